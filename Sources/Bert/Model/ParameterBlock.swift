import Foundation
import BertCompute

/// Where one named tensor lives inside a parameter block. Names are the Hugging Face checkpoint
/// names, so loading and saving need no renaming table. The same offsets address the gradient block.
public struct TensorRef: Sendable, Hashable {
    /// The checkpoint name, e.g. "encoder.layer.0.attention.self.query.weight".
    public let name: String
    /// The dimensions, row-major as torch stores them.
    public let shape: [Int]
    /// Index of the tensor's first value in the block, in Floats.
    public let offset: Int
    /// Values in the tensor: the product of its shape.
    public var count: Int { shape.reduce(1, *) }
}

/// The order and offsets of every parameter of a model: one contiguous block (as llm.c), so the
/// optimizer, gradient clipping and checkpointing each see a single buffer.
public struct ParameterLayout: Sendable {
    /// Every tensor, in the order added (offsets increasing).
    public private(set) var tensors: [TensorRef] = []
    /// Floats in the whole block: the sum of the tensors' counts.
    public private(set) var totalCount = 0
    private var index: [String: Int] = [:]

    /// An empty layout.
    public init() {}

    /// Appends a tensor of `shape` after the last one and returns where it lives; a name added
    /// twice traps.
    public mutating func add(_ name: String, _ shape: [Int]) -> TensorRef {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let ref = TensorRef(name: name, shape: shape, offset: totalCount)
        index[name] = tensors.count
        tensors.append(ref)
        totalCount += ref.count
        return ref
    }

    /// The tensor of that checkpoint name, or nil.
    public func tensor(named name: String) -> TensorRef? { index[name].map { tensors[$0] } }
}

/// A parameter block: the layout plus the Floats.
public final class ParameterStore: @unchecked Sendable {
    /// Where each tensor lives in ``data``.
    public let layout: ParameterLayout
    /// Every value, contiguous in layout order (zero when allocated). Matrices held in low
    /// precision (``holdsLowPrecision``) are widened into it first.
    public var data: FloatBuffer {
        materializeAll()
        return storage
    }
    let storage: FloatBuffer
    /// Matrices whose floats were never written (a quantized folder's int8 or bf16 matrices, or
    /// the inference copies made from them), by offset: read through the subscript or ``data``,
    /// each is widened into the block first. Guarded by `heldLock`.
    var held: [Int: HeldEntry] = [:]
    let heldLock = NSLock()
    /// Whether any matrix was ever held: set while loading, before the store is shared.
    public internal(set) var holdsLowPrecision = false
    /// Told as a backward into this block finishes each encoder layer (a gradient block being
    /// summed over ranks in buckets); nil otherwise.
    public var gradientObserver: GradientObserver?

    /// Allocates the block; a layout too large for this machine's memory is an error, not a crash.
    public init(layout: ParameterLayout) throws {
        self.layout = layout
        let bytes = UInt64(layout.totalCount) * 4
        guard bytes < ProcessInfo.processInfo.physicalMemory else {
            throw BertError.outOfMemory(
                "the model needs \(bytes >> 20) MiB for its \(layout.totalCount) parameters, more than this "
                    + "machine's memory (\(ProcessInfo.processInfo.physicalMemory >> 20) MiB)"
            )
        }
        guard let buffer = FloatBuffer(allocatingZeroed: layout.totalCount) else {
            throw BertError.outOfMemory(
                "cannot allocate \(layout.totalCount) parameters (\(layout.totalCount / 262_144) MiB of Float32)")
        }
        storage = buffer
    }

    /// The first value of `ref`'s tensor in this block (valid while the store lives).
    @inline(__always)
    public subscript(_ ref: TensorRef) -> UnsafeMutablePointer<Float> {
        if holdsLowPrecision && ref.shape.count > 1 { materialize(ref.offset..<(ref.offset + ref.count)) }
        return storage.pointer + ref.offset
    }

    /// A copy of `ref`'s values.
    public func values(_ ref: TensorRef) -> [Float] {
        Array(UnsafeBufferPointer(start: self[ref], count: ref.count))
    }

    /// The first tensor holding a NaN or an infinity, or nil. Every model write and load checks
    /// it: such weights make every output NaN.
    public func firstNonFiniteTensor() -> TensorRef? {
        layout.tensors.first { !isFinite($0) }
    }

    /// Whether every value of the tensor is finite.
    public func isFinite(_ t: TensorRef) -> Bool {
        // A held matrix was checked when it was read (int8 values and finite scales, bf16 values).
        if holdsLowPrecision && isHeld(t) { return true }
        // The largest magnitude's bits: NaN and infinity have an all-ones exponent. An integer max
        // vectorizes (a Float sum would run one add at a time: this runs at every model load).
        let bits = UnsafeRawPointer(storage.pointer + t.offset).assumingMemoryBound(to: UInt32.self)
        var largest: UInt32 = 0
        for i in 0..<t.count { largest = Swift.max(largest, bits[i] & 0x7FFF_FFFF) }
        return largest < 0x7F80_0000
    }

    /// Throws when a tensor holds NaN or an infinity; `what` says whose weights they are.
    public func checkFinite(_ what: String, advice: String) throws {
        if let t = firstNonFiniteTensor() {
            throw BertError.notFinite(what: "\(what): tensor \(t.name)", advice: advice)
        }
    }
}

/// Initialises every tensor of a store by BERT's rules, in layout order.
public func initializeBertParameters(_ store: ParameterStore, config: BertConfig, rng: inout SeededRandom) {
    let std = config.initializerRange
    for t in store.layout.tensors {
        let p = store[t]
        if t.name.hasSuffix("LayerNorm.weight") {
            p.update(repeating: 1, count: t.count)
        } else if t.name.hasSuffix(".bias") || t.shape.count == 1 {
            p.update(repeating: 0, count: t.count)
        } else {
            for i in 0..<t.count { p[i] = Float(rng.nextGaussian() * std) }
        }
    }
}
