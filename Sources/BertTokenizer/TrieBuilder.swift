// The build of FastWordPiece's trie, in flat arrays: no array per node (a vocabulary of 30,000
// tokens makes about 100,000 nodes, and an array each cost more start-up time than the whole
// tokenization of a few megabytes). Children are a linked list per node, found by a hash of
// (node, byte); failure links and pops are computed breadth first into one pops array; the
// double array is placed with nodes ordered by fan-out by a counting sort.

/// A vocabulary's trie with failure links and pops, as the double array the matcher reads.
struct CompiledTrie {
    let units: UnsafeMutableBufferPointer<TrieUnit>
    let failure: UnsafeMutableBufferPointer<Int32>
    let popStart: UnsafeMutableBufferPointer<Int32>
    let popCount: UnsafeMutableBufferPointer<Int32>
    let pops: UnsafeMutableBufferPointer<Int32>
    let suffixRoot: Int32
}

struct TrieBuilder {
    // Per node, in buffers sized for the most nodes the tokens can make (no growth, no array
    // bookkeeping per access: this runs at every start-up).
    private let firstChild, nextSibling, childCount: UnsafeMutablePointer<Int32>
    private let label: UnsafeMutablePointer<UInt8>
    let tokenAt: UnsafeMutablePointer<Int32>
    private let capacity: Int
    private(set) var nodeCount = 1
    /// (node << 8 | byte) + 1 → child; 0 marks an empty slot.
    private let keys: UnsafeMutablePointer<Int64>
    private let values: UnsafeMutablePointer<Int32>
    private let mask: Int

    /// Room for `maxNodes` nodes (the root included): at most one per byte of the tokens.
    init(maxNodes: Int) {
        capacity = max(1, maxNodes)
        firstChild = .allocate(capacity: capacity)
        nextSibling = .allocate(capacity: capacity)
        childCount = .allocate(capacity: capacity)
        label = .allocate(capacity: capacity)
        tokenAt = .allocate(capacity: capacity)
        // Load at most 0.8 even if every byte made a node; shared prefixes keep it near half.
        var slots = 1024
        while slots < capacity + capacity / 4 { slots <<= 1 }
        keys = .allocate(capacity: slots)
        keys.initialize(repeating: 0, count: slots)
        values = .allocate(capacity: slots)
        mask = slots - 1
        firstChild[0] = -1
        nextSibling[0] = -1
        childCount[0] = 0
        label[0] = 0
        tokenAt[0] = -1
    }

    func deallocate() {
        firstChild.deallocate(); nextSibling.deallocate(); childCount.deallocate()
        label.deallocate(); tokenAt.deallocate(); keys.deallocate(); values.deallocate()
    }

    @inline(__always) private func slot(_ key: Int64) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: key) &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
    }

    /// The child of `s` by byte `c`, or -1.
    @inline(__always) func child(_ s: Int32, _ c: UInt8) -> Int32 {
        let key = (Int64(s) << 8 | Int64(c)) + 1
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == 0 { return -1 }
            i = (i + 1) & mask
        }
    }

    private mutating func addChild(_ s: Int32, _ c: UInt8) -> Int32 {
        precondition(nodeCount < capacity, "TrieBuilder: more nodes than bytes")
        let t = Int32(nodeCount)
        nodeCount += 1
        firstChild[Int(t)] = -1
        nextSibling[Int(t)] = firstChild[Int(s)]
        label[Int(t)] = c
        childCount[Int(t)] = 0
        tokenAt[Int(t)] = -1
        firstChild[Int(s)] = t
        childCount[Int(s)] += 1
        let key = (Int64(s) << 8 | Int64(c)) + 1
        var i = slot(key)
        while keys[i] != 0 { i = (i + 1) & mask }
        keys[i] = key
        values[i] = t
        return t
    }

    /// The node of `bytes`, made with its missing ancestors.
    mutating func insert<S: Sequence<UInt8>>(_ bytes: S) -> Int32 {
        var s: Int32 = 0
        for c in bytes {
            let t = child(s, c)
            s = t >= 0 ? t : addChild(s, c)
        }
        return s
    }

    /// Failure links and pops (LinMaxMatch), then the double array. The suffix subtree (below
    /// `sroot`, the continuation prefix) is linked first: its links stay inside it and point to
    /// shallower nodes; then the rest, whose links lead into it.
    func compile(suffixRoot sroot: Int32) -> CompiledTrie {
        let n = nodeCount
        let fail = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        let popStart = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        let popCount = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        let queue = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { fail.deallocate(); popStart.deallocate(); popCount.deallocate(); queue.deallocate() }
        fail.initialize(repeating: -1, count: n)
        popStart.initialize(repeating: 0, count: n)
        popCount.initialize(repeating: 0, count: n)
        var flat: [Int32] = []
        flat.reserveCapacity(2 * n)
        var scratch: [Int32] = []
        for (root, skip) in (sroot != 0 ? [(sroot, Int32(-1)), (Int32(0), sroot)] : [(Int32(0), Int32(-1))]) {
            queue[0] = root
            var head = 0, tail = 1
            while head < tail {
                let u = Int(queue[head])
                head += 1
                var v = firstChild[u]
                while v >= 0 {
                    let vi = Int(v)
                    defer { v = nextSibling[vi] }
                    if v == skip { continue }
                    queue[tail] = v
                    tail += 1
                    if tokenAt[vi] >= 0 {
                        fail[vi] = sroot
                        popStart[vi] = Int32(flat.count)
                        popCount[vi] = 1
                        flat.append(tokenAt[vi])
                        continue
                    }
                    let c = label[vi]
                    scratch.removeAll(keepingCapacity: true)
                    scratch += flat[Int(popStart[u])..<Int(popStart[u] + popCount[u])]
                    var z = fail[u], t: Int32 = -1
                    while z >= 0 {
                        t = child(z, c)
                        if t >= 0 { break }
                        scratch += flat[Int(popStart[Int(z)])..<Int(popStart[Int(z)] + popCount[Int(z)])]
                        z = fail[Int(z)]
                    }
                    if z >= 0 {
                        fail[vi] = t
                        popStart[vi] = Int32(flat.count)
                        popCount[vi] = Int32(scratch.count)
                        flat += scratch
                    }
                }
            }
        }

        // Bases: nodes with the most children first (the hardest to fit), each at the lowest
        // offset whose cells are all free. nextFree[x] leads to the first free cell >= x
        // (union-find with path compression), so a search skips used runs instead of scanning.
        // Every node takes one cell; the double array stays near that (it grows when not).
        var cells = n + n / 2 + 1024
        var used = UnsafeMutablePointer<Bool>.allocate(capacity: cells)
        var nextFree = UnsafeMutablePointer<Int32>.allocate(capacity: cells)
        used.initialize(repeating: false, count: cells)
        for i in 0..<cells { nextFree[i] = Int32(i) }
        defer { used.deallocate(); nextFree.deallocate() }
        used[0] = true
        nextFree[0] = 1
        // Counting sort of the nodes with children by fan-out, largest first.
        var bucket = [Int](repeating: 0, count: 258)
        for s in 0..<n where childCount[s] > 0 { bucket[257 - Int(childCount[s])] += 1 }
        var total = 0
        for k in 0..<258 {
            let c = bucket[k]
            bucket[k] = total
            total += c
        }
        let order = UnsafeMutablePointer<Int32>.allocate(capacity: max(total, 1))
        let nodeBase = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { order.deallocate(); nodeBase.deallocate() }
        nodeBase.initialize(repeating: 0, count: n)
        for s in 0..<n where childCount[s] > 0 {
            let k = 257 - Int(childCount[s])
            order[bucket[k]] = Int32(s)
            bucket[k] += 1
        }
        var highWater = 0
        for k in 0..<total {
            let s = Int(order[k])
            var low = 255, high = 0
            var v = firstChild[s]
            while v >= 0 {
                low = min(low, Int(label[Int(v)]))
                high = max(high, Int(label[Int(v)]))
                v = nextSibling[Int(v)]
            }
            var pos = findFree(1 + low, nextFree)
            var tries = 0
            while true {
                let b = pos - low
                if b + 512 >= cells {
                    // Double the cells (the new half free).
                    let grown = 2 * (b + 512)
                    let u2 = UnsafeMutablePointer<Bool>.allocate(capacity: grown)
                    let f2 = UnsafeMutablePointer<Int32>.allocate(capacity: grown)
                    u2.update(from: used, count: cells)
                    f2.update(from: nextFree, count: cells)
                    (u2 + cells).initialize(repeating: false, count: grown - cells)
                    for i in cells..<grown { f2[i] = Int32(i) }
                    used.deallocate()
                    nextFree.deallocate()
                    used = u2
                    nextFree = f2
                    cells = grown
                }
                var fits = true
                var w = firstChild[s]
                while w >= 0 {
                    if used[b + Int(label[Int(w)])] {
                        fits = false
                        break
                    }
                    w = nextSibling[Int(w)]
                }
                if fits { break }
                tries += 1
                // Bounded search: past 64 misses, place the node after everything used so far.
                pos = tries < 64 ? findFree(pos + 1, nextFree) : max(pos + 1, highWater + 1 + low)
            }
            let b = pos - low
            nodeBase[s] = Int32(b)
            var w = firstChild[s]
            while w >= 0 {
                let cell = b + Int(label[Int(w)])
                used[cell] = true
                nextFree[cell] = Int32(cell + 1)
                w = nextSibling[Int(w)]
            }
            highWater = max(highWater, b + high)
        }
        // Slots, by a walk from the root (slot 0): a node's slot is its parent's base + its byte.
        let size = highWater + 1 + 257  // base + any byte stays inside
        let units = UnsafeMutableBufferPointer<TrieUnit>.allocate(capacity: size)
        let failure = UnsafeMutableBufferPointer<Int32>.allocate(capacity: size)
        let starts = UnsafeMutableBufferPointer<Int32>.allocate(capacity: size)
        let counts = UnsafeMutableBufferPointer<Int32>.allocate(capacity: size)
        units.initialize(repeating: TrieUnit(base: 0, check: -1))
        failure.initialize(repeating: -1)
        starts.initialize(repeating: 0)
        counts.initialize(repeating: 0)
        let slotOf = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { slotOf.deallocate() }
        slotOf[0] = 0
        units[0].check = -2
        queue[0] = 0
        var head = 0, tail = 1
        while head < tail {
            let s = Int(queue[head])
            head += 1
            let sSlot = Int(slotOf[s])
            units[sSlot].base = nodeBase[s]
            var t = firstChild[s]
            while t >= 0 {
                let cell = Int(nodeBase[s]) + Int(label[Int(t)])
                units[cell].check = Int32(sSlot)
                slotOf[Int(t)] = Int32(cell)
                queue[tail] = t
                tail += 1
                t = nextSibling[Int(t)]
            }
        }
        for node in 0..<n {
            let slot = Int(slotOf[node])
            failure[slot] = fail[node] >= 0 ? slotOf[Int(fail[node])] : -1
            starts[slot] = popStart[node]
            counts[slot] = popCount[node]
        }
        let pops = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(flat.count, 1))
        _ = pops.initialize(from: flat)
        return CompiledTrie(
            units: units, failure: failure, popStart: starts, popCount: counts, pops: pops,
            suffixRoot: slotOf[Int(sroot)])
    }
}

/// The first free cell at or after `x` (nextFree: union-find with path compression).
@inline(__always)
private func findFree(_ x: Int, _ nextFree: UnsafeMutablePointer<Int32>) -> Int {
    var r = x
    while Int(nextFree[r]) != r { r = Int(nextFree[r]) }
    var y = x
    while Int(nextFree[y]) != r {
        let next = Int(nextFree[y])
        nextFree[y] = Int32(r)
        y = next
    }
    return r
}
