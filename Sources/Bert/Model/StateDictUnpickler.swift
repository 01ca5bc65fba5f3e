import Foundation

/// A restricted pickle reader for the `data.pkl` of a `torch.save` archive: it understands the
/// opcodes a state dict is written with (protocols 2 to 5) and builds values itself, so no pickle
/// can run code. A pickle's globals are names of Python callables; only those a state dict needs
/// are accepted (an ordered dict, the tensor and parameter rebuilders, the storage classes), as
/// `torch.load(weights_only=True)` does. Any other global (`os.system`, `builtins.eval`) is refused
/// when it is named, before anything could call it.
struct StateDictUnpickler {
    /// A storage of the archive: `data/<key>` holds `count` elements of `dtype`.
    struct Storage {
        let dtype: SafeTensorsDType
        let key: String
        let count: Int
    }

    /// A tensor as `_rebuild_tensor_v2` describes it: a view of a storage.
    struct Tensor {
        let storage: Storage
        let offset: Int
        let shape: [Int]
        let strides: [Int]
    }

    final class Dictionary {
        var keys: [Value] = []
        var values: [Value] = []
    }

    final class List {
        var items: [Value] = []
    }

    indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String), bytes(Data)
        /// `depth`: how many tuples deep it nests (bounded: values nested without end would be
        /// freed by recursion without end).
        case tuple([Value], depth: Int), list(List), dictionary(Dictionary)
        /// A named callable or class, one of `allowedGlobals`.
        case global(String)
        case storage(Storage)
        case tensor(Tensor)

        var kind: String {
            switch self {
            case .none: return "None"
            case .bool: return "a bool"
            case .int: return "an int"
            case .float: return "a float"
            case .string: return "a string"
            case .bytes: return "bytes"
            case .tuple: return "a tuple"
            case .list: return "a list"
            case .dictionary: return "a dict"
            case .global(let name): return name
            case .storage: return "a storage"
            case .tensor: return "a tensor"
            }
        }
    }

    /// The storage classes torch pickles by name, and their element types.
    static let storageTypes: [String: SafeTensorsDType] = [
        "torch.FloatStorage": .F32, "torch.HalfStorage": .F16, "torch.BFloat16Storage": .BF16,
        "torch.DoubleStorage": .F64, "torch.LongStorage": .I64, "torch.IntStorage": .I32,
        "torch.ShortStorage": .I16, "torch.CharStorage": .I8, "torch.ByteStorage": .U8, "torch.BoolStorage": .BOOL,
    ]

    /// Every global a state dict is written with.
    static let allowedGlobals: Set<String> = Set(storageTypes.keys).union([
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
    ])

    private let bytes: [UInt8]
    private let path: String
    private var i = 0
    private var stack: [Value] = []
    private var marks: [Int] = []
    private var memo: [Int: Value] = [:]
    /// Every list and dict made, emptied when the reader is done: containers can nest each other
    /// (even in a cycle), and emptying them all frees them without recursion.
    private var lists: [List] = []
    private var dictionaries: [Dictionary] = []
    static let maxTupleDepth = 32

    /// The value `data` unpickles to; `path` names the checkpoint in errors.
    /// Unpickles `data` and passes the value to `body`; `path` names the checkpoint in errors.
    static func read<R>(_ data: Data, path: String, _ body: (Value) throws -> R) throws -> R {
        var reader = StateDictUnpickler(bytes: [UInt8](data), path: path)
        defer { reader.empty() }
        return try body(try reader.run())
    }

    private mutating func empty() {
        for l in lists { l.items = [] }
        for d in dictionaries {
            d.keys = []
            d.values = []
        }
        stack = []
        memo = [:]
    }

    private func tuple(_ items: [Value]) throws -> Value {
        var depth = 1
        for case .tuple(_, let d) in items { depth = max(depth, d + 1) }
        guard depth <= Self.maxTupleDepth else { throw bad("tuples nested more than \(Self.maxTupleDepth) deep") }
        return .tuple(items, depth: depth)
    }

    private mutating func newList() -> Value {
        let l = List()
        lists.append(l)
        return .list(l)
    }

    private mutating func newDictionary() -> Value {
        let d = Dictionary()
        dictionaries.append(d)
        return .dictionary(d)
    }

    private init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    private func bad(_ why: String) -> BertError {
        .malformedFile(path: path, reason: "data.pkl: \(why) (at byte \(i))")
    }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - i else { throw bad("truncated") }
        defer { i += n }
        return bytes[i..<(i + n)]
    }

    private mutating func unsigned(_ n: Int) throws -> Int {
        var v: UInt64 = 0
        for (k, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
        guard v <= UInt64(Int.max) else { throw bad("a length or index is out of range") }
        return Int(v)
    }

    private mutating func pop() throws -> Value {
        guard let v = stack.popLast() else { throw bad("the stack is empty") }
        if let m = marks.last, stack.count < m { throw bad("an opcode takes a value from below a mark") }
        return v
    }

    /// The values since the last mark, removing them and the mark.
    private mutating func popToMark() throws -> [Value] {
        guard let m = marks.popLast(), m <= stack.count else { throw bad("no mark") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    private mutating func line() throws -> String {
        guard let end = bytes[i...].firstIndex(of: 0x0A) else { throw bad("truncated") }
        defer { i = end + 1 }
        return String(decoding: bytes[i..<end], as: UTF8.self)
    }

    private mutating func text(_ n: Int) throws -> String {
        guard let s = String(validating: try take(n), as: UTF8.self) else { throw bad("a string is not valid UTF-8") }
        return s
    }

    private func global(_ module: String, _ name: String) throws -> Value {
        let full = "\(module).\(name)"
        guard Self.allowedGlobals.contains(full) else { throw BertError.unsafePickle(path: path, global: full) }
        return .global(full)
    }

    private mutating func run() throws -> Value {
        while true {
            let op = try take(1).first!
            switch op {
            case 0x80: _ = try take(1)  // PROTO
            case 0x95: _ = try take(8)  // FRAME: a length hint
            case UInt8(ascii: "."):  // STOP
                guard marks.isEmpty, stack.count == 1 else { throw bad("the pickle ends with \(stack.count) values") }
                return stack[0]
            case UInt8(ascii: "c"):  // GLOBAL module\nname\n
                let module = try line()
                stack.append(try global(module, try line()))
            case 0x93:  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw bad("STACK_GLOBAL needs two strings")
                }
                stack.append(try global(module, name))
            case UInt8(ascii: "("): marks.append(stack.count)  // MARK
            case UInt8(ascii: "}"): stack.append(newDictionary())  // EMPTY_DICT
            case UInt8(ascii: "]"): stack.append(newList())  // EMPTY_LIST
            case UInt8(ascii: ")"): stack.append(try tuple([]))  // EMPTY_TUPLE
            case UInt8(ascii: "t"): stack.append(try tuple(try popToMark()))  // TUPLE
            case 0x85: stack.append(try tuple([try pop()]))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(try tuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(try tuple([a, b, c]))
            case UInt8(ascii: "N"): stack.append(.none)
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case UInt8(ascii: "K"): stack.append(.int(try unsigned(1)))  // BININT1
            case UInt8(ascii: "M"): stack.append(.int(try unsigned(2)))  // BININT2
            case UInt8(ascii: "J"): stack.append(.int(Int(Int32(truncatingIfNeeded: try unsigned(4)))))  // BININT
            case 0x8A, 0x8B:  // LONG1, LONG4: little-endian two's complement
                let n = op == 0x8A ? try unsigned(1) : try unsigned(4)
                let digits = try take(n)
                guard n <= 8 else { throw bad("an integer of \(n) bytes is out of range") }
                var v: UInt64 = 0
                for (k, b) in digits.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
                if n > 0, n < 8, digits.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }
                stack.append(.int(Int(Int64(bitPattern: v))))
            case UInt8(ascii: "G"):  // BINFLOAT, big-endian
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case UInt8(ascii: "X"): stack.append(.string(try text(try unsigned(4))))  // BINUNICODE
            case 0x8C: stack.append(.string(try text(try unsigned(1))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try unsigned(8))))  // BINUNICODE8
            case UInt8(ascii: "C"): stack.append(.bytes(Data(try take(try unsigned(1)))))  // SHORT_BINBYTES
            case UInt8(ascii: "B"): stack.append(.bytes(Data(try take(try unsigned(4)))))  // BINBYTES
            case UInt8(ascii: "q"), UInt8(ascii: "r"):  // BINPUT, LONG_BINPUT
                let k = try unsigned(op == UInt8(ascii: "q") ? 1 : 4)
                guard let top = stack.last else { throw bad("the stack is empty") }
                memo[k] = top
            case 0x94:  // MEMOIZE
                guard let top = stack.last else { throw bad("the stack is empty") }
                memo[memo.count] = top
            case UInt8(ascii: "h"), UInt8(ascii: "j"):  // BINGET, LONG_BINGET
                let k = try unsigned(op == UInt8(ascii: "h") ? 1 : 4)
                guard let v = memo[k] else { throw bad("memo entry \(k) is not set") }
                stack.append(v)
            case UInt8(ascii: "a"):  // APPEND
                let v = try pop()
                guard case .list(let list) = stack.last else { throw bad("APPEND to \(stack.last?.kind ?? "nothing")") }
                list.items.append(v)
            case UInt8(ascii: "e"):  // APPENDS
                let items = try popToMark()
                guard case .list(let list) = stack.last else {
                    throw bad("APPENDS to \(stack.last?.kind ?? "nothing")")
                }
                list.items += items
            case UInt8(ascii: "s"):  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dictionary(let d) = stack.last else {
                    throw bad("SETITEM on \(stack.last?.kind ?? "nothing")")
                }
                d.keys.append(k)
                d.values.append(v)
            case UInt8(ascii: "u"):  // SETITEMS
                let items = try popToMark()
                guard items.count % 2 == 0, case .dictionary(let d) = stack.last else {
                    throw bad("SETITEMS needs key-value pairs on a dict")
                }
                for k in stride(from: 0, to: items.count, by: 2) {
                    d.keys.append(items[k])
                    d.values.append(items[k + 1])
                }
            case UInt8(ascii: "Q"):  // BINPERSID: ("storage", class, key, location, count)
                stack.append(try storage(try pop()))
            case UInt8(ascii: "R"):  // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            case UInt8(ascii: "b"):  // BUILD: the state of an ordered dict (its _metadata) or a parameter
                _ = try pop()
                switch stack.last {
                case .dictionary, .tensor: break
                default: throw bad("BUILD on \(stack.last?.kind ?? "nothing")")
                }
            default:
                throw bad("opcode 0x\(String(op, radix: 16)) is not one a state dict is written with")
            }
        }
    }

    private func storage(_ id: Value) throws -> Value {
        guard case .tuple(let t, _) = id, t.count == 5, case .string("storage") = t[0], case .global(let type) = t[1],
            case .string(let key) = t[2], case .int(let count) = t[4], count >= 0
        else { throw bad("a persistent id that is not a storage") }
        guard let dtype = Self.storageTypes[type] else { throw bad("\(type) is not a storage class") }
        return .storage(Storage(dtype: dtype, key: key, count: count))
    }

    private func ints(_ v: Value, _ what: String) throws -> [Int] {
        guard case .tuple(let items, _) = v else { throw bad("a tensor's \(what) is not a tuple") }
        return try items.map {
            guard case .int(let n) = $0 else { throw bad("a tensor's \(what) holds \($0.kind)") }
            return n
        }
    }

    private mutating func call(_ callable: Value, _ args: Value) throws -> Value {
        guard case .global(let name) = callable, case .tuple(let a, _) = args else {
            throw bad("REDUCE on \(callable.kind), which is not callable")
        }
        switch name {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw bad("OrderedDict with arguments") }
            return newDictionary()
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let storage) = a[0], case .int(let offset) = a[1], offset >= 0 else {
                throw bad("_rebuild_tensor_v2 needs a storage, an offset, a size and a stride")
            }
            let shape = try ints(a[2], "size"), strides = try ints(a[3], "stride")
            guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
                throw bad("a tensor's size \(shape) and stride \(strides) do not match")
            }
            return .tensor(Tensor(storage: storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = a.first, case .tensor = first else { throw bad("\(name) of something not a tensor") }
            return first
        default:
            throw bad("\(name) is not callable")
        }
    }
}
