import Foundation
import BertCompute

/// Where one named tensor lives inside a parameter block. Names are the Hugging Face checkpoint
/// names, so loading and saving need no renaming table. The same offsets address the gradient block.
public struct TensorRef: Sendable, Hashable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The order and offsets of every parameter of a model: one contiguous block (as llm.c), so the
/// optimizer, gradient clipping and checkpointing each see a single buffer.
public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorRef] = []
    public private(set) var totalCount = 0
    private var index: [String: Int] = [:]

    public init() {}

    public mutating func add(_ name: String, _ shape: [Int]) -> TensorRef {
        precondition(index[name] == nil, "duplicate parameter \(name)")
        let ref = TensorRef(name: name, shape: shape, offset: totalCount)
        index[name] = tensors.count
        tensors.append(ref)
        totalCount += ref.count
        return ref
    }

    public func tensor(named name: String) -> TensorRef? { index[name].map { tensors[$0] } }
}

/// A parameter block: the layout plus the Floats.
public final class ParameterStore: @unchecked Sendable {
    public let layout: ParameterLayout
    public let data: FloatBuffer

    /// Allocates the block; a layout too large for this machine's memory is an error, not a crash.
    public init(layout: ParameterLayout) throws {
        self.layout = layout
        let bytes = UInt64(layout.totalCount) * 4
        guard bytes < ProcessInfo.processInfo.physicalMemory else {
            throw BertError("the model needs \(bytes >> 20) MiB for its \(layout.totalCount) parameters, more than this machine's memory (\(ProcessInfo.processInfo.physicalMemory >> 20) MiB)")
        }
        guard let buffer = FloatBuffer(allocatingZeroed: layout.totalCount) else {
            throw BertError("cannot allocate \(layout.totalCount) parameters (\(layout.totalCount / 262_144) MiB of Float32)")
        }
        data = buffer
    }

    @inline(__always)
    public subscript(_ ref: TensorRef) -> UnsafeMutablePointer<Float> { data.pointer + ref.offset }

    public func values(_ ref: TensorRef) -> [Float] {
        Array(UnsafeBufferPointer(start: self[ref], count: ref.count))
    }
}

// MARK: - Modules. Their Swift paths follow the checkpoint names (`self_` is "self").

public struct Linear: Sendable {
    /// [out, in], as torch.nn.Linear.
    public let weight: TensorRef
    public let bias: TensorRef
    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }

    init(_ layout: inout ParameterLayout, _ prefix: String, out: Int, in inFeatures: Int) {
        weight = layout.add(prefix + ".weight", [out, inFeatures])
        bias = layout.add(prefix + ".bias", [out])
    }

    init(weight: TensorRef, bias: TensorRef) {
        self.weight = weight
        self.bias = bias
    }
}

public struct LayerNormParams: Sendable {
    public let weight: TensorRef
    public let bias: TensorRef

    init(_ layout: inout ParameterLayout, _ prefix: String, size: Int) {
        weight = layout.add(prefix + ".weight", [size])
        bias = layout.add(prefix + ".bias", [size])
    }
}

public struct BertEmbeddings: Sendable {
    public let wordEmbeddings: TensorRef
    public let positionEmbeddings: TensorRef
    public let tokenTypeEmbeddings: TensorRef
    public let layerNorm: LayerNormParams

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        wordEmbeddings = layout.add(prefix + ".word_embeddings.weight", [c.vocabSize, c.hiddenSize])
        positionEmbeddings = layout.add(prefix + ".position_embeddings.weight", [c.maxPositionEmbeddings, c.hiddenSize])
        tokenTypeEmbeddings = layout.add(prefix + ".token_type_embeddings.weight", [c.typeVocabSize, c.hiddenSize])
        layerNorm = LayerNormParams(&layout, prefix + ".LayerNorm", size: c.hiddenSize)
    }
}

public struct BertSelfAttention: Sendable {
    public let query: Linear
    public let key: Linear
    public let value: Linear
    /// query, key and value weights are adjacent in the block: together one [3H, H] matrix, so
    /// the three projections are a single matrix product. Likewise the three biases.
    public let fusedWeightOffset: Int
    public let fusedBiasOffset: Int

    init(_ layout: inout ParameterLayout, _ prefix: String, _ h: Int) {
        let qw = layout.add(prefix + ".query.weight", [h, h])
        let kw = layout.add(prefix + ".key.weight", [h, h])
        let vw = layout.add(prefix + ".value.weight", [h, h])
        let qb = layout.add(prefix + ".query.bias", [h])
        let kb = layout.add(prefix + ".key.bias", [h])
        let vb = layout.add(prefix + ".value.bias", [h])
        query = Linear(weight: qw, bias: qb)
        key = Linear(weight: kw, bias: kb)
        value = Linear(weight: vw, bias: vb)
        fusedWeightOffset = qw.offset
        fusedBiasOffset = qb.offset
    }
}

public struct BertSelfOutput: Sendable {
    public let dense: Linear
    public let layerNorm: LayerNormParams
}

public struct BertAttention: Sendable {
    public let self_: BertSelfAttention
    public let output: BertSelfOutput
}

public struct BertIntermediate: Sendable {
    public let dense: Linear
}

public struct BertOutput: Sendable {
    public let dense: Linear
    public let layerNorm: LayerNormParams
}

public struct BertLayer: Sendable {
    public let attention: BertAttention
    public let intermediate: BertIntermediate
    public let output: BertOutput

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        let h = c.hiddenSize
        let selfAttention = BertSelfAttention(&layout, prefix + ".attention.self", h)
        let attentionOutput = BertSelfOutput(
            dense: Linear(&layout, prefix + ".attention.output.dense", out: h, in: h),
            layerNorm: LayerNormParams(&layout, prefix + ".attention.output.LayerNorm", size: h))
        attention = BertAttention(self_: selfAttention, output: attentionOutput)
        intermediate = BertIntermediate(dense: Linear(&layout, prefix + ".intermediate.dense", out: c.intermediateSize, in: h))
        output = BertOutput(
            dense: Linear(&layout, prefix + ".output.dense", out: h, in: c.intermediateSize),
            layerNorm: LayerNormParams(&layout, prefix + ".output.LayerNorm", size: h))
    }
}

public struct BertEncoder: Sendable {
    public let layer: [BertLayer]
}

public struct BertPooler: Sendable {
    public let dense: Linear
}
