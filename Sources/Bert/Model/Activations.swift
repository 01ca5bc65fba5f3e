import BertCompute
import Foundation

/// Where one BertLayer's forward reads and writes, on the T real tokens. In inference several of
/// these alias one another inside a reused workspace (what only a backward would need is
/// overwritten); in training each is a buffer of its own, kept for the backward.
struct LayerBuffers {
    var input: UnsafeMutablePointer<Float>  // [T, H] the residual stream in
    var qkv: UnsafeMutablePointer<Float>  // [T, 3H]
    var attention: AttentionStorage
    var context: UnsafeMutablePointer<Float>  // [T, H] attention's output, heads side by side
    var attentionSum: UnsafeMutablePointer<Float>  // [T, H] dense(context) + input: a LayerNorm's input
    var attentionMask = noMask  // dropout on dense(context)
    var attentionStatistics: RowStatistics?
    var attentionNormed: UnsafeMutablePointer<Float>  // [T, H] (inference: the input, overwritten)
    var preActivation: UnsafeMutablePointer<Float>  // [T, I]
    var activated: UnsafeMutablePointer<Float>  // [T, I] (inference: the pre-activation, overwritten)
    var outputSum: UnsafeMutablePointer<Float>  // [T, H] dense(activated) + attentionNormed
    var outputMask = noMask
    var outputStatistics: RowStatistics?
    var output: UnsafeMutablePointer<Float>  // [T, H] (inference: the input, overwritten)
}

/// Where attention keeps its probabilities.
enum AttentionStorage {
    /// Inference: each worker's scores in its own `perWorker` floats of `scratch`, used and dropped;
    /// `items` are the work items, (sequence, head, first query row), the same for every layer.
    case scratch(UnsafeMutablePointer<Float>, perWorker: Int, workers: Int, items: [(Int, Int, Int)])
    /// Training: every (sequence, head)'s len×len probabilities at `offsets[item]`, their dropout
    /// masks beside them (nil without attention dropout), and `2 · threads · maxLen²` floats of
    /// scratch for the dropped probabilities and the backward.
    case kept(
        probabilities: UnsafeMutablePointer<Float>, masks: UnsafeMutablePointer<Float>?, offsets: [Int],
        scratch: UnsafeMutablePointer<Float>, workers: Int)
}

/// Everything a backward pass through BertModel needs from its forward: each layer's input, the
/// Q/K/V projections, the attention probabilities, the LayerNorms' inputs and statistics, the
/// feed-forward's pre-activation, the dropout masks. Kept per layer on the real tokens.
public final class EncoderActivations: @unchecked Sendable {
    final class Layer {
        let input, qkv, probabilities, context, attentionSum, attentionNormed: FloatBuffer
        let preActivation, activated, outputSum: FloatBuffer
        let mean1, rstd1, mean2, rstd2: FloatBuffer
        var probabilityMasks = noMask
        var attentionMask = noMask, outputMask = noMask

        init(tokens t: Int, config c: BertConfig, probabilities: Int) {
            let h = c.hiddenSize, i = c.intermediateSize
            input = FloatBuffer(count: t * h)
            qkv = FloatBuffer(count: t * 3 * h)
            self.probabilities = FloatBuffer(count: probabilities)
            context = FloatBuffer(count: t * h)
            attentionSum = FloatBuffer(count: t * h)
            attentionNormed = FloatBuffer(count: t * h)
            preActivation = FloatBuffer(count: t * i)
            activated = FloatBuffer(count: t * i)
            outputSum = FloatBuffer(count: t * h)
            mean1 = FloatBuffer(count: t)
            rstd1 = FloatBuffer(count: t)
            mean2 = FloatBuffer(count: t)
            rstd2 = FloatBuffer(count: t)
        }
    }

    let tokens: RealTokens
    let dropout: Dropout?
    let embeddingSum: FloatBuffer  // [T, H] word + position + type (LayerNorm input)
    let mean0: FloatBuffer, rstd0: FloatBuffer
    var embeddingMask = noMask
    let layers: [Layer]
    /// [T, H] the encoder's output (last hidden state on the real tokens).
    let output: FloatBuffer
    /// The pooler's input rows (first token of each sequence) and tanh output, [B, H].
    var poolerInput: FloatBuffer?
    var poolerOutput: FloatBuffer?
    /// Offsets of each (sequence, head) block of probabilities.
    let probabilityOffsets: [Int]
    /// Attention's scratch: dropped probabilities in the forward, dP and dropped P in the backward.
    let attentionScratch: FloatBuffer
    /// The workers `attentionScratch` holds room for (Compute.threads when these were made).
    let workers: Int

    /// Buffers for a forward on `tokens`, with the dropout masks of `dropout` drawn (nil or all
    /// probabilities 0: evaluation mode).
    init(tokens: RealTokens, config c: BertConfig, dropout: Dropout?) {
        self.tokens = tokens
        let dropout = dropout.flatMap { $0.isActive ? $0 : nil }
        self.dropout = dropout
        let t = tokens.tokenCount, h = c.hiddenSize, heads = c.numAttentionHeads
        embeddingSum = FloatBuffer(count: t * h)
        mean0 = FloatBuffer(count: t)
        rstd0 = FloatBuffer(count: t)
        output = FloatBuffer(count: t * h)
        var offsets: [Int] = []
        var total = 0
        for len in tokens.sequenceLength {
            for _ in 0..<heads {
                offsets.append(total)
                total += len * len
            }
        }
        probabilityOffsets = offsets
        let maxLen = tokens.sequenceLength.max() ?? 0
        workers = Compute.threads
        attentionScratch = FloatBuffer(count: 2 * workers * maxLen * maxLen)
        layers = (0..<c.numHiddenLayers).map { _ in Layer(tokens: t, config: c, probabilities: total) }
        guard let dropout else { return }
        embeddingMask = dropout.hiddenMask(tokens: tokens, cols: h, stream: Dropout.embeddingStream)
        for (l, layer) in layers.enumerated() {
            layer.attentionMask = dropout.hiddenMask(
                tokens: tokens, cols: h, stream: Dropout.attentionOutputStream(layer: l))
            layer.outputMask = dropout.hiddenMask(tokens: tokens, cols: h, stream: Dropout.outputStream(layer: l))
            guard dropout.attentionProbability > 0 else { continue }
            layer.probabilityMasks = FloatBuffer(count: total)
            for (item, offset) in offsets.enumerated() {
                let len = tokens.sequenceLength[item / heads]
                dropout.mask(
                    layer.probabilityMasks.pointer + offset, count: len * len,
                    probability: dropout.attentionProbability,
                    stream: Dropout.probabilityStream(
                        layer: l, item: dropout.sequence(item / heads) * heads + item % heads))
            }
        }
    }

    /// Layer l's buffers: its input is the previous layer's output, its output the next one's input.
    func buffers(layer l: Int) -> LayerBuffers {
        let s = layers[l]
        let masks = s.probabilityMasks.count > 0 ? s.probabilityMasks.pointer : nil
        return LayerBuffers(
            input: s.input.pointer, qkv: s.qkv.pointer,
            attention: .kept(
                probabilities: s.probabilities.pointer, masks: masks, offsets: probabilityOffsets,
                scratch: attentionScratch.pointer, workers: workers),
            context: s.context.pointer, attentionSum: s.attentionSum.pointer, attentionMask: s.attentionMask,
            attentionStatistics: RowStatistics(mean: s.mean1.pointer, rstd: s.rstd1.pointer),
            attentionNormed: s.attentionNormed.pointer, preActivation: s.preActivation.pointer,
            activated: s.activated.pointer, outputSum: s.outputSum.pointer, outputMask: s.outputMask,
            outputStatistics: RowStatistics(mean: s.mean2.pointer, rstd: s.rstd2.pointer),
            output: l + 1 < layers.count ? layers[l + 1].input.pointer : output.pointer)
    }

    /// The input of the first layer (the embeddings' output).
    var encoderInput: UnsafeMutablePointer<Float> { layers.first?.input.pointer ?? output.pointer }

    /// The last hidden state as a zero-padded [B, S, H] array.
    public var lastHiddenState: [Float] {
        tokens.unpack(output.pointer, cols: output.count / max(1, tokens.tokenCount))
    }
    /// The pooler output as a [B, H] array; nil when the model has no pooler.
    public var pooled: [Float]? { poolerOutput?.toArray() }
}
