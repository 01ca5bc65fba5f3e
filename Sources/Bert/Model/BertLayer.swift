import BertCompute

/// transformers' BertIntermediate: the feed-forward's first dense and its activation.
public struct BertIntermediate: Sendable {
    /// The projection from the hidden size to the intermediate size ("intermediate.dense").
    public let dense: Linear
    let activation: Activation

    /// activated = act(dense(input)); `activated` may equal `preActivation` (inference).
    func forward(
        _ input: UnsafePointer<Float>, rows t: Int, preActivation: UnsafeMutablePointer<Float>,
        activated: UnsafeMutablePointer<Float>, parameters p: ParameterStore, matrices: InferenceMatrices?
    ) {
        let n = dense.outFeatures, act = activation
        dense.forward(input, rows: t, output: preActivation, parameters: p, matrices: matrices) { rows in
            Kernels.activation(preActivation, output: activated, cols: n, rows: rows, activation: act)
        }
    }

    /// dy (the activation's output gradient) becomes the pre-activation's in place; the input's
    /// gradient is added into `inputGradient`.
    func backward(
        _ dy: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, preActivation: UnsafePointer<Float>,
        rows t: Int, inputGradient: UnsafeMutablePointer<Float>,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        Kernels.activationBackward(
            dy: dy, x: preActivation, dx: dy, count: t * dense.outFeatures, activation: activation)
        dense.backward(
            dy, input: input, rows: t, inputGradient: inputGradient, accumulateInput: true,
            parameters: p, gradients: g)
    }
}

/// transformers' BertLayer: attention block, then feed-forward block, each post-LayerNorm.
public struct BertLayer: Sendable {
    /// Self-attention and its output block ("attention").
    public let attention: BertAttention
    /// The feed-forward's first dense and its activation ("intermediate").
    public let intermediate: BertIntermediate
    /// The feed-forward's second dense, back to the hidden size, with the residual and
    /// LayerNorm ("output").
    public let output: BertResidualOutput

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        attention = BertAttention(&layout, prefix + ".attention", c)
        intermediate = BertIntermediate(
            dense: Linear(&layout, prefix + ".intermediate.dense", out: c.intermediateSize, in: c.hiddenSize),
            activation: c.activation)
        output = BertResidualOutput(&layout, prefix + ".output", out: c.hiddenSize, in: c.intermediateSize)
    }

    var linears: [Linear] { [attention.self_.qkv, attention.output.dense, intermediate.dense, output.dense] }

    func forward(
        _ b: LayerBuffers, tokens: RealTokens, eps: Float, parameters p: ParameterStore,
        matrices: InferenceMatrices?
    ) {
        let t = tokens.tokenCount
        attention.forward(b, tokens: tokens, eps: eps, parameters: p, matrices: matrices)
        intermediate.forward(
            b.attentionNormed, rows: t, preActivation: b.preActivation, activated: b.activated,
            parameters: p, matrices: matrices)
        output.forward(
            b.activated, residual: b.attentionNormed, rows: t, sum: b.outputSum, mask: b.outputMask,
            statistics: b.outputStatistics, output: b.output, eps: eps, parameters: p, matrices: matrices)
    }

    /// The forward's calls in reverse: `dx` holds the output's gradient on entry and the input's on
    /// return.
    func backward(
        _ dx: UnsafeMutablePointer<Float>, _ b: LayerBuffers, tokens: RealTokens, scratch s: GradientScratch,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let t = tokens.tokenCount
        output.backward(
            dx, input: b.activated, sum: b.outputSum, mask: b.outputMask, statistics: b.outputStatistics!,
            rows: t, residualGradient: s.normed, inputGradient: s.activated, scratch: s.sum,
            parameters: p, gradients: g)
        intermediate.backward(
            s.activated, input: b.attentionNormed, preActivation: b.preActivation, rows: t,
            inputGradient: s.normed, parameters: p, gradients: g)
        attention.backward(s.normed, b, tokens: tokens, scratch: s, inputGradient: dx, parameters: p, gradients: g)
    }
}
