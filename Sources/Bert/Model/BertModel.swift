import BertCompute
import Foundation

/// Transformers' BertModel: embeddings, L post-LayerNorm encoder blocks, a tanh pooler on [CLS].
/// One forward at a time per instance (its scratch memory is reused); use one instance per thread
/// for concurrent forwards, or let one forward use all cores (the default).
public final class BertModel: @unchecked Sendable {
    /// The architecture the model was built from.
    public let config: BertConfig
    /// The modules, and where each of their tensors lives in ``parameters``.
    public let weights: BertModelWeights
    /// Every parameter in one contiguous block of Float32, laid out by ``weights``.
    public let parameters: ParameterStore
    private let workspace = Workspace()
    private let lock = NSLock()

    /// A model with all parameters zero (load or initialise them next).
    public init(config: BertConfig, addPoolingLayer: Bool = true) throws {
        try config.validate()
        // BLAS is loaded here, before any worker thread exists (loading sets environment variables).
        BLAS.configure()
        self.config = config
        var layout = ParameterLayout()
        weights = BertModelWeights(&layout, config: config, addPoolingLayer: addPoolingLayer)
        parameters = try ParameterStore(layout: layout)
    }

    /// The encoder of a task model, over that model's parameter block (its "bert." tensors): the
    /// heads run their inference through it.
    init(weights: BertModelWeights, parameters: ParameterStore) {
        config = weights.config
        self.weights = weights
        self.parameters = parameters
    }

    /// The word, position and token type embeddings and their LayerNorm.
    public var embeddings: BertEmbeddings { weights.embeddings }
    /// The stack of encoder layers.
    public var encoder: BertEncoder { weights.encoder }
    /// The tanh pooler on the first token; nil when built without `addPoolingLayer`.
    public var pooler: BertPooler? { weights.pooler }
    /// Parameters in the model (the pooler's included when it has one).
    public var parameterCount: Int { parameters.layout.totalCount }

    /// BERT's initialisation: weights N(0, initializer_range), biases 0, LayerNorm 1 and 0, and the
    /// padding token's embedding row 0 (as transformers' _init_weights).
    public func initializeWeights(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        initializeBertParameters(parameters, config: config, rng: &rng)
        let pad = config.padTokenId
        (parameters[weights.embeddings.wordEmbeddings] + pad * config.hiddenSize)
            .update(repeating: 0, count: config.hiddenSize)
    }

    /// The inference forward (no dropout) of a padded batch; `outputHiddenStates` also returns
    /// the embeddings' and every layer's output. Throws when the batch does not fit the config (sizes,
    /// ids outside the vocabulary, positions past max_position_embeddings).
    public func forward(_ batch: EncoderBatch, outputHiddenStates: Bool = false) throws -> EncoderOutput {
        lock.lock()
        defer { lock.unlock() }
        refreshMatrices()
        return try weights.forward(
            batch, parameters: parameters, workspace: workspace,
            outputHiddenStates: outputHiddenStates, matrices: matrices)
    }

    /// The inference forward, for a head: `body` gets the real tokens, their last hidden state
    /// [T, H] (valid only inside `body`) and the pooled output [B, H] when the model has a pooler.
    func withHiddenStates<R>(
        _ batch: EncoderBatch,
        _ body: (RealTokens, UnsafePointer<Float>, FloatBuffer?) throws -> R
    ) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        refreshMatrices()
        let tokens = try RealTokens(batch, config: config)
        let x = weights.encode(tokens, parameters: parameters, mode: .inference(workspace, matrices))
        return try body(tokens, x, weights.pooler?.forward(x, tokens: tokens, parameters: parameters).output)
    }

    /// The parameters changed since their kernels were made (training, loading): make them again.
    private func refreshMatrices() {
        if let m = matrices, !m.matches(parameters) {
            matrices = InferenceMatrices(weights.linears, parameters: parameters, precision: m.precision)
        }
    }

    /// The precision of the inference products: what `prepareForInference(precision:)` set
    /// (fp32 until then).
    public var precision: Precision {
        lock.lock()
        defer { lock.unlock() }
        return matrices?.precision ?? .fp32
    }

    /// Packs the encoder's weight matrices once, for inference: `forward` then multiplies batches of
    /// more than a few tokens (up to `BLAS.packedRowLimit` a thread) against these copies instead
    /// of having BLAS pack the weights again on every call: our kernel is about as fast as
    /// OpenBLAS's, the gain is that packing, a few percent of the forward. Costs memory equal to
    /// the encoder's weight matrices. After changing the parameters, call it again; `forward`
    /// also checks a sample of every matrix and repacks when they changed (a training step or a
    /// load changes them all), but an edit of a few values could escape the sample.
    ///
    /// In fp32 this packs only where the packed kernel beats BLAS (`BLAS.packedGemmIsFast`): on a
    /// CPU with AVX-512, whose C kernel is chosen at run time in any build, or in a build for the
    /// CPU with FMA (`-Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBERT_FMA`). Elsewhere the
    /// Swift kernel's vectors are baseline SSE while BLAS picks AVX2 kernels at run time, and this
    /// does nothing unless `always` is set.
    ///
    /// With `precision` bf16 or int8 the weight matrices are converted once into that format
    /// (copies half or a quarter of the float matrices' size, in place of the packed float copy)
    /// and every product of the forward runs in it, in any build: the kernels are chosen at run
    /// time from what the CPU reports (AVX512_BF16, AVX512_VNNI), with a portable version
    /// elsewhere. A model loaded from a folder `bert quantize` wrote in that precision has no
    /// float matrices to convert: the copies are made from its stored values and are its only
    /// copy (see ``weightBytes``). Loaded from an FP32 folder, its float weights stay.
    public func prepareForInference(always: Bool = false, precision: Precision = .fp32) {
        guard always || precision != .fp32 || BLAS.packedGemmIsFast else { return }
        lock.lock()
        defer { lock.unlock() }
        matrices = InferenceMatrices(weights.linears, parameters: parameters, precision: precision)
    }

    /// Bytes the weights take in memory: the float tensors, the matrices held in int8 or bf16
    /// instead (a quantized folder's, loaded as stored: they are widened to floats only where
    /// something reads them as floats) and the inference copies. A folder written by `bert quantize`
    /// and prepared for its own precision takes about a quarter (int8) or half (bf16) of its FP32
    /// original's file; the FP32 folder prepared for fp32 takes twice its file (the packed copies).
    public var weightBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return parameters.residentBytes + (matrices?.copiedBytes ?? 0)
    }

    /// Drops the packed copies (`forward` multiplies through BLAS again).
    public func releaseInferenceWeights() {
        lock.lock()
        defer { lock.unlock() }
        matrices = nil
    }

    private var matrices: InferenceMatrices?  // guarded by lock
}

extension BertModel {
    /// A zeroed gradient block with the parameters' layout.
    public func makeGradients() throws -> ParameterStore { try ParameterStore(layout: parameters.layout) }

    /// The forward pass keeping what `backward` needs.
    public func forwardForTraining(_ batch: EncoderBatch, dropout: Dropout? = nil) throws -> EncoderActivations {
        try weights.forwardForTraining(batch, parameters: parameters, dropout: dropout)
    }

    /// Adds the gradients of a loss into `gradients`, given the loss's gradient with respect to
    /// the last hidden state ([B, S, H]) and the pooler output ([B, H]).
    public func backward(
        _ activations: EncoderActivations, dHidden: [Float]?, dPooled: [Float]?,
        into gradients: ParameterStore
    ) {
        weights.backward(activations, dHidden: dHidden, dPooled: dPooled, parameters: parameters, gradients: gradients)
    }
}
