import BertCompute
import Foundation

/// transformers' BertEncoder: the stack of layers.
public struct BertEncoder: Sendable {
    /// The num_hidden_layers layers, in order ("encoder.layer.N").
    public let layer: [BertLayer]
}

/// transformers' BertPooler: tanh(dense(hidden state of the first token)).
public struct BertPooler: Sendable {
    /// [hidden_size, hidden_size]: the projection before the tanh ("pooler.dense").
    public let dense: Linear

    /// output[B, H] = tanh(dense(first real token of each sequence)), zeros for empty sequences;
    /// `input` [B, H] holds those first rows (kept for the backward in training).
    func forward(
        _ hidden: UnsafePointer<Float>, tokens: RealTokens, parameters p: ParameterStore
    ) -> (input: FloatBuffer, output: FloatBuffer) {
        let h = dense.outFeatures, b = tokens.batchSize
        let input = FloatBuffer(count: b * h), output = FloatBuffer(count: b * h)
        for s in 0..<b where tokens.sequenceLength[s] > 0 {
            (input.pointer + s * h).update(from: hidden + tokens.sequenceStart[s] * h, count: h)
        }
        BLAS.parallelSgemm(
            transB: true, m: b, n: h, k: h, a: input.pointer, lda: h, b: p[dense.weight], ldb: h,
            c: output.pointer, ldc: h)
        Kernels.biasTanh(output.pointer, bias: p[dense.bias], output: output.pointer, cols: h, rows: 0..<b)
        for s in 0..<b where tokens.sequenceLength[s] == 0 { (output.pointer + s * h).update(repeating: 0, count: h) }
        return (input, output)
    }

    /// Adds the gradient of the output (`dy`, [B, H]) into the hidden states' gradient (`dx`, [T, H])
    /// and the dense's gradients. Empty sequences, whose output is the constant 0, pass nothing.
    func backward(
        _ dy: [Float], input: FloatBuffer, output: FloatBuffer, tokens: RealTokens,
        hiddenGradient dx: UnsafeMutablePointer<Float>, parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let h = dense.outFeatures, b = tokens.batchSize
        let dpre = FloatBuffer(dy)
        for s in 0..<b where tokens.sequenceLength[s] == 0 { (dpre.pointer + s * h).update(repeating: 0, count: h) }
        Kernels.tanhBackward(dy: dpre.pointer, y: output.pointer, dx: dpre.pointer, count: b * h)
        let dInput = FloatBuffer(count: b * h)
        dense.backward(
            dpre.pointer, input: input.pointer, rows: b, inputGradient: dInput.pointer, parameters: p, gradients: g)
        for s in 0..<b where tokens.sequenceLength[s] > 0 {
            let row = dx + tokens.sequenceStart[s] * h
            for j in 0..<h { row[j] += dInput.pointer[s * h + j] }
        }
    }
}

/// What BertModel returns. Rows of padded positions are zero (transformers fills them with values
/// that nothing downstream may use; we do not compute them at all).
public struct EncoderOutput: Sendable {
    /// B: sequences in the batch.
    public let batchSize: Int
    /// S: the padded length of every sequence.
    public let sequenceLength: Int
    /// H: values per token (hidden_size).
    public let hiddenSize: Int
    /// [B, S, H].
    public var lastHiddenState: [Float]
    /// On request: the embeddings' output then every layer's output, each [B, S, H].
    public var hiddenStates: [[Float]]
    /// [B, H]: tanh(dense(hidden state of the first real token)), when the model has a pooler.
    public var poolerOutput: [Float]?
}

/// The parameters of a BertModel (embeddings, encoder, optional pooler) as a tree of modules whose
/// paths are the checkpoint names, laid out inside a parameter block (possibly with heads beside it).
public struct BertModelWeights: Sendable {
    /// The architecture the modules were built from.
    public let config: BertConfig
    /// What every tensor name starts with: "" for a bare BertModel, "bert." inside a task model.
    public let prefix: String
    /// The word, position and token type embeddings and their LayerNorm.
    public let embeddings: BertEmbeddings
    /// The stack of encoder layers.
    public let encoder: BertEncoder
    /// The tanh pooler on the first token; nil when built without `addPoolingLayer`.
    public let pooler: BertPooler?

    /// Lays out every tensor of the model in `layout`, each name preceded by `prefix`, the
    /// pooler's only when `addPoolingLayer`.
    public init(
        _ layout: inout ParameterLayout, config c: BertConfig, prefix: String = "", addPoolingLayer: Bool = true
    ) {
        config = c
        self.prefix = prefix
        embeddings = BertEmbeddings(&layout, prefix + "embeddings", c)
        encoder = BertEncoder(
            layer: (0..<c.numHiddenLayers).map { BertLayer(&layout, prefix + "encoder.layer.\($0)", c) })
        pooler =
            addPoolingLayer
            ? BertPooler(dense: Linear(&layout, prefix + "pooler.dense", out: c.hiddenSize, in: c.hiddenSize)) : nil
    }

    /// The encoder's weight matrices (the products an inference kernel can take over).
    var linears: [Linear] { encoder.layer.flatMap(\.linears) }
}

/// What one forward keeps.
enum ForwardMode {
    /// Nothing: buffers reused layer after layer inside the workspace; products through the
    /// inference kernels in `matrices` (nil: BLAS).
    case inference(Workspace, InferenceMatrices?)
    /// Everything the backward needs, in these activations (products through BLAS: the weights
    /// change every step).
    case training(EncoderActivations)
}

extension BertModelWeights {
    /// The encoder forward, the one for inference and for training: embeddings, then every layer,
    /// on the real tokens. Returns the last hidden state [T, H] (in the workspace or the
    /// activations). `observe` sees the embeddings' output and each layer's.
    func encode(
        _ tokens: RealTokens, parameters p: ParameterStore, mode: ForwardMode,
        observe: (UnsafeMutablePointer<Float>) -> Void = { _ in }
    ) -> UnsafeMutablePointer<Float> {
        let c = config
        let t = tokens.tokenCount, h = c.hiddenSize
        let eps = Float(c.layerNormEps)
        let buffers: (Int) -> LayerBuffers
        let matrices: InferenceMatrices?
        let x: UnsafeMutablePointer<Float>
        switch mode {
        case .training(let a):
            matrices = nil
            x = a.encoderInput
            if t > 0 {
                embeddings.forward(
                    tokens, sum: a.embeddingSum.pointer, output: x, eps: eps, parameters: p,
                    statistics: RowStatistics(mean: a.mean0.pointer, rstd: a.rstd0.pointer),
                    mask: a.embeddingMask)
            }
            buffers = a.buffers(layer:)
        case .inference(let workspace, let m):
            matrices = m
            // Carve the scratch: x | qkv | context | sum | ffn | scores (one block per worker).
            let d = c.headSize, maxLen = tokens.sequenceLength.max() ?? 0
            let fused = m != nil && BLAS.canFuseAttention(headSize: d)
            let perWorker = fused ? BLAS.fusedAttentionScratch(keys: maxLen, headSize: d) : attentionBlockRows * maxLen
            let workers = Compute.threads  // the scratch's workers, whatever `threads` becomes meanwhile
            let sizes = [t * h, t * 3 * h, t * h, t * h, t * c.intermediateSize, workers * perWorker]
            let base = workspace.floats(sizes.reduce(0, +) + 16 * sizes.count)
            var pointers: [UnsafeMutablePointer<Float>] = []
            var o = 0
            for s in sizes { pointers.append(base + o); o += (s + 15) / 16 * 16 }
            x = pointers[0]
            if t > 0 { embeddings.forward(tokens, sum: x, output: x, eps: eps, parameters: p) }
            let shared = LayerBuffers(
                input: x, qkv: pointers[1],
                attention: .scratch(
                    pointers[5], perWorker: perWorker, workers: workers,
                    items: attentionItems(tokens, heads: c.numAttentionHeads)),
                context: pointers[2], attentionSum: pointers[3], attentionNormed: x,
                preActivation: pointers[4], activated: pointers[4], outputSum: pointers[3],
                output: x)
            buffers = { _ in shared }
        }
        guard t > 0 else { return x }
        observe(x)
        var last = x
        for (l, layer) in encoder.layer.enumerated() {
            let b = buffers(l)
            layer.forward(b, tokens: tokens, eps: eps, parameters: p, matrices: matrices)
            observe(b.output)
            last = b.output
        }
        return last
    }

    /// The inference forward of a padded batch.
    func forward(
        _ batch: EncoderBatch, parameters: ParameterStore, workspace: Workspace,
        outputHiddenStates: Bool, matrices: InferenceMatrices? = nil
    ) throws -> EncoderOutput {
        let tokens = try RealTokens(batch, config: config)
        let h = config.hiddenSize
        var hiddenStates: [[Float]] = []
        let x = encode(tokens, parameters: parameters, mode: .inference(workspace, matrices)) { layerOutput in
            if outputHiddenStates { hiddenStates.append(tokens.unpack(layerOutput, cols: h)) }
        }
        var output = EncoderOutput(
            batchSize: batch.batchSize, sequenceLength: batch.sequenceLength, hiddenSize: h,
            lastHiddenState: hiddenStates.last ?? tokens.unpack(x, cols: h),
            hiddenStates: hiddenStates, poolerOutput: nil)
        output.poolerOutput = pooler?.forward(x, tokens: tokens, parameters: parameters).output.toArray()
        return output
    }

    /// The forward pass keeping what the backward needs; with `dropout` (training mode) its masks
    /// are drawn and applied, without it the numbers are `forward`'s.
    public func forwardForTraining(
        _ batch: EncoderBatch, parameters p: ParameterStore,
        dropout: Dropout? = nil
    ) throws -> EncoderActivations {
        let tokens = try RealTokens(batch, config: config)
        let a = EncoderActivations(tokens: tokens, config: config, dropout: dropout)
        let x = encode(tokens, parameters: p, mode: .training(a))
        if let pooled = pooler?.forward(x, tokens: tokens, parameters: p) {
            a.poolerInput = pooled.input
            a.poolerOutput = pooled.output
        }
        return a
    }

    /// Backpropagates the gradient of the last hidden state (`dHidden`, [B, S, H] zero-padded;
    /// padded rows are ignored) and of the pooler output (`dPooled`, [B, H]) into `grads`, a store
    /// with the same layout as the parameters; gradients are added (+=).
    public func backward(
        _ a: EncoderActivations, dHidden: [Float]?, dPooled: [Float]?,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let tokens = a.tokens
        let t = tokens.tokenCount, h = config.hiddenSize
        let dx = FloatBuffer(count: t * h)  // gradient of the current layer's output
        if let dHidden {
            for (row, flat) in tokens.origin.enumerated() {
                for j in 0..<h { dx.pointer[row * h + j] = dHidden[flat * h + j] }
            }
        }
        if let pooler, let dPooled, let input = a.poolerInput, let output = a.poolerOutput {
            pooler.backward(
                dPooled, input: input, output: output, tokens: tokens, hiddenGradient: dx.pointer,
                parameters: p, gradients: g)
        }
        guard t > 0 else { return }
        let scratch = GradientScratch(tokens: t, config: config)
        for l in stride(from: encoder.layer.count - 1, through: 0, by: -1) {
            encoder.layer[l].backward(
                dx.pointer, a.buffers(layer: l), tokens: tokens, scratch: scratch,
                parameters: p, gradients: g)
            g.gradientObserver?.layerFinished(l)
        }
        embeddings.backward(
            dx.pointer, sum: a.embeddingSum.pointer,
            statistics: RowStatistics(mean: a.mean0.pointer, rstd: a.rstd0.pointer),
            mask: a.embeddingMask, tokens: tokens, scratch: scratch.sum, parameters: p, gradients: g)
    }
}
