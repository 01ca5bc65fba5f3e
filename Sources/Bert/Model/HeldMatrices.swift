import BertCompute
import Foundation

// A quantized folder's matrices stay in int8 or bf16 in memory: loading does not widen them into
// the parameter block, the inference kernels are made from them directly, and the embeddings are
// gathered from them. Anything else that reads a matrix's floats (fp32 products, heads, training,
// saving) gets them widened on first access, through the block's subscript or `data`: the values
// are the same either way (int8 × scale, or the bf16 value), only the memory differs.

/// How a matrix of the parameter block is held when its floats are not.
enum HeldMatrix {
    /// Row-major int8 values with a scale per row, as a quantized folder stores them.
    case int8(q: [Int8], scales: [Float])
    /// Row-major bf16 bit patterns.
    case bf16([UInt16])
    /// Rows `firstRow...` of an int8 inference copy (query, key and value share one).
    case packedInt8(Int8Weights, firstRow: Int)
    /// Rows `firstRow...` of a bf16 inference copy.
    case packedBF16(BF16Weights, firstRow: Int)

    /// Bytes it takes; a packed copy shared by several matrices counts in full in each.
    var byteCount: Int {
        switch self {
        case .int8(let q, let scales): return q.count + 4 * scales.count
        case .bf16(let bits): return 2 * bits.count
        case .packedInt8(let w, _): return w.byteCount
        case .packedBF16(let w, _): return w.byteCount
        }
    }
}

/// A held matrix and the tensor whose floats it stands for.
struct HeldEntry {
    let tensor: TensorRef
    var matrix: HeldMatrix
}

/// Rows of a held matrix, to gather embeddings from without widening the table.
enum HeldRows {
    case int8(UnsafePointer<Int8>, scales: UnsafePointer<Float>)
    case bf16(UnsafePointer<UInt16>)
}

extension ParameterStore {
    /// Holds `t`'s values as `matrix` instead of writing them into the block (loading only).
    func hold(_ t: TensorRef, _ matrix: HeldMatrix) {
        heldLock.lock()
        defer { heldLock.unlock() }
        held[t.offset] = HeldEntry(tensor: t, matrix: matrix)
        holdsLowPrecision = true
    }

    /// Forgets any held form of `t` (its floats are about to be written from elsewhere).
    func release(_ t: TensorRef) {
        guard holdsLowPrecision else { return }
        heldLock.lock()
        defer { heldLock.unlock() }
        held[t.offset] = nil
    }

    /// Whether every tensor of `t`'s range is held (not yet widened).
    func isHeld(_ t: TensorRef) -> Bool {
        heldLock.lock()
        defer { heldLock.unlock() }
        return heldTensors(in: t.offset..<(t.offset + t.count)).reduce(0) { $0 + $1.count } == t.count
    }

    /// The held tensors overlapping `range`, in order. Call with `heldLock` held.
    private func heldTensors(in range: Range<Int>) -> [TensorRef] {
        held.values.map(\.tensor).filter { $0.offset < range.upperBound && $0.offset + $0.count > range.lowerBound }
            .sorted { $0.offset < $1.offset }
    }

    /// Widens every held matrix overlapping `range` into the block.
    func materialize(_ range: Range<Int>) {
        heldLock.lock()
        defer { heldLock.unlock() }
        guard !held.isEmpty else { return }
        for t in heldTensors(in: range) { widen(t) }
    }

    /// Widens every held matrix (whole-block users: training, checkpoints, broadcasts).
    func materializeAll() {
        guard holdsLowPrecision else { return }
        heldLock.lock()
        defer { heldLock.unlock() }
        for t in heldTensors(in: 0..<layout.totalCount) { widen(t) }
    }

    /// Writes `t`'s floats from its held form and forgets that form. Call with `heldLock` held.
    private func widen(_ t: TensorRef) {
        guard let matrix = held.removeValue(forKey: t.offset)?.matrix else { return }
        let out = storage.pointer + t.offset
        let rows = t.shape[0], cols = t.count / max(1, t.shape[0])
        switch matrix {
        case .int8(let q, let scales):
            for r in 0..<rows {
                let s = scales[r]
                for c in 0..<cols { out[r * cols + c] = Float(q[r * cols + c]) * s }
            }
        case .bf16(let bits):
            for i in 0..<t.count { out[i] = Float(bitPattern: UInt32(bits[i]) << 16) }
        case .packedInt8(let w, let first): w.dequantizeRows(first..<(first + rows), into: out)
        case .packedBF16(let w, let first): w.dequantizeRows(first..<(first + rows), into: out)
        }
    }

    /// The int8 values and row scales of the matrices that exactly cover `t` (one tensor, or the
    /// adjacent query, key and value), when all are held as stored; nil otherwise.
    func heldInt8(_ t: TensorRef) -> (q: [Int8], scales: [Float])? {
        heldLock.lock()
        defer { heldLock.unlock() }
        let parts = heldTensors(in: t.offset..<(t.offset + t.count))
        guard parts.reduce(0, { $0 + $1.count }) == t.count else { return nil }
        var q: [Int8] = [], scales: [Float] = []
        for part in parts {
            guard case .int8(let pq, let ps)? = held[part.offset]?.matrix else { return nil }
            q += pq
            scales += ps
        }
        return (q, scales)
    }

    /// The bf16 bit patterns of the matrices that exactly cover `t`, when all are held as stored.
    func heldBF16(_ t: TensorRef) -> [UInt16]? {
        heldLock.lock()
        defer { heldLock.unlock() }
        let parts = heldTensors(in: t.offset..<(t.offset + t.count))
        guard parts.reduce(0, { $0 + $1.count }) == t.count else { return nil }
        var bits: [UInt16] = []
        for part in parts {
            guard case .bf16(let pb)? = held[part.offset]?.matrix else { return nil }
            bits += pb
        }
        return bits
    }

    /// Replaces the held form of the matrices covering `t` by rows of an inference copy made
    /// from them (which then is the only copy: the stored values are dropped).
    func holdPacked(_ t: TensorRef, _ make: (Int) -> HeldMatrix) {
        heldLock.lock()
        defer { heldLock.unlock() }
        var row = 0
        for part in heldTensors(in: t.offset..<(t.offset + t.count)) {
            held[part.offset] = HeldEntry(tensor: part, matrix: make(row))
            row += part.shape[0]
        }
    }

    /// The rows of `t` to gather from when it is held as stored (an embedding table); nil when
    /// its floats are in the block. Valid while `t` stays held: the caller holds the model's lock.
    func withHeldRows<R>(_ t: TensorRef, _ body: (HeldRows?) -> R) -> R {
        heldLock.lock()
        let matrix = held[t.offset]?.matrix
        heldLock.unlock()
        switch matrix {
        case .int8(let q, let scales)?:
            return q.withUnsafeBufferPointer { qp in
                scales.withUnsafeBufferPointer { body(.int8(qp.baseAddress!, scales: $0.baseAddress!)) }
            }
        case .bf16(let bits)?: return bits.withUnsafeBufferPointer { body(.bf16($0.baseAddress!)) }
        default: return body(nil)
        }
    }

    /// Bytes the parameters take: the floats of every tensor not held, plus each held form
    /// (packed copies counted once).
    var residentBytes: Int {
        heldLock.lock()
        defer { heldLock.unlock() }
        var bytes = 0
        var counted = Set<ObjectIdentifier>()
        for t in layout.tensors {
            guard let matrix = held[t.offset]?.matrix else { bytes += 4 * t.count; continue }
            switch matrix {
            case .packedInt8(let w, _): if counted.insert(ObjectIdentifier(w)).inserted { bytes += w.byteCount }
            case .packedBF16(let w, _): if counted.insert(ObjectIdentifier(w)).inserted { bytes += w.byteCount }
            default: bytes += matrix.byteCount
            }
        }
        return bytes
    }
}
