import BertCompute
import Foundation

/// A batch for pretraining: the encoder inputs, the masked-LM labels ([B, S], the original token
/// id at each position chosen for prediction, −100 elsewhere, as transformers) and the
/// next-sentence labels ([B], 0 = IsNext, 1 = NotNext).
public struct PretrainingBatch: Sendable {
    /// The encoder inputs [B, S], the chosen positions already masked.
    public var inputs: EncoderBatch
    /// Masked-LM labels [B × S]: the original token id at each position to predict, −100 elsewhere.
    public var mlmLabels: [Int32]
    /// Next-sentence labels [B] (0 = IsNext, 1 = NotNext); nil for no next-sentence loss.
    public var nspLabels: [Int32]?

    /// A batch from its inputs and labels; nil `nspLabels` trains the masked LM only.
    public init(inputs: EncoderBatch, mlmLabels: [Int32], nspLabels: [Int32]?) {
        self.inputs = inputs
        self.mlmLabels = mlmLabels
        self.nspLabels = nspLabels
    }
}

/// The losses of one batch (means, as transformers) and the counts behind the accuracies.
public struct PretrainingLoss: Sendable {
    /// The masked-LM loss plus the next-sentence loss.
    public var total: Double { mlm + nsp }
    /// Mean masked-LM cross-entropy over the masked positions (0 when there are none).
    public var mlm = 0.0
    /// Mean next-sentence cross-entropy over the rows (0 without next-sentence labels).
    public var nsp = 0.0
    /// Masked positions whose top prediction is the label.
    public var mlmCorrect = 0
    /// Masked positions in the batch.
    public var mlmCount = 0
    /// Rows whose next-sentence prediction is right.
    public var nspCorrect = 0
    /// Rows scored for next-sentence prediction (0 without labels).
    public var nspCount = 0

    /// No losses yet (zeros), to add batches to.
    public init() {}

    /// Adds another batch's losses and counts to these.
    public mutating func add(_ other: PretrainingLoss) {
        mlm += other.mlm; nsp += other.nsp
        mlmCorrect += other.mlmCorrect; mlmCount += other.mlmCount
        nspCorrect += other.nspCorrect; nspCount += other.nspCount
    }

    /// The losses and counts summed over the job's ranks (`also`: one more count summed with them).
    func summed(over communicator: Communicator, also extra: inout Int) throws -> PretrainingLoss {
        if communicator.size == 1 { return self }
        var v = [mlm, nsp, Double(mlmCorrect), Double(mlmCount), Double(nspCorrect), Double(nspCount), Double(extra)]
        try communicator.sum(&v)
        extra = Int(v[6])
        var s = PretrainingLoss()
        s.mlm = v[0]; s.nsp = v[1]
        s.mlmCorrect = Int(v[2]); s.mlmCount = Int(v[3]); s.nspCorrect = Int(v[4]); s.nspCount = Int(v[5])
        return s
    }

    /// The losses and counts summed over the job's ranks.
    func summed(over communicator: Communicator) throws -> PretrainingLoss {
        var none = 0
        return try summed(over: communicator, also: &none)
    }
}

/// transformers' BertLMPredictionHead: dense, activation and LayerNorm, then a decoder tied to the
/// word embeddings plus a bias of its own. One forward/backward pair serves pretraining and
/// fill-mask.
public struct MaskedLMHead: Sendable {
    /// The transform's dense layer, [H] to [H] ("cls.predictions.transform.dense").
    public let transformDense: Linear
    /// The LayerNorm after the transform's activation ("cls.predictions.transform.LayerNorm").
    public let transformLayerNorm: LayerNorm
    /// Weight: the word embeddings (tied, [V, H]); bias: "cls.predictions.bias".
    public let decoder: Linear
    let activation: Activation
    let eps: Float

    /// What the backward needs of one forward on `rows` rows.
    final class Kept {
        let input, transformed, activated, normed, mean, rstd: FloatBuffer
        init(rows: Int, hidden h: Int) {
            input = FloatBuffer(count: rows * h)
            transformed = FloatBuffer(count: rows * h)
            activated = FloatBuffer(count: rows * h)
            normed = FloatBuffer(count: rows * h)
            mean = FloatBuffer(count: rows)
            rstd = FloatBuffer(count: rows)
        }
        var statistics: RowStatistics { RowStatistics(mean: mean.pointer, rstd: rstd.pointer) }
    }

    /// logits[rows, V] of hidden rows x[rows, H]. With `kept` (training) the intermediate values
    /// go there, and x must already be `kept.input`; without, `scratch` ([rows, H]) holds them.
    func forward(
        _ x: UnsafePointer<Float>, rows: Int, logits: UnsafeMutablePointer<Float>, parameters p: ParameterStore,
        kept: Kept? = nil, scratch: UnsafeMutablePointer<Float>? = nil
    ) {
        let h = transformDense.outFeatures, act = activation
        guard let t1 = kept?.transformed.pointer ?? scratch else {
            preconditionFailure("MaskedLMHead.forward: no buffers")
        }
        let a1 = kept?.activated.pointer ?? t1, t2 = kept?.normed.pointer ?? t1
        transformDense.forward(x, rows: rows, output: t1, parameters: p) { r in
            Kernels.activation(t1, output: a1, cols: h, rows: r, activation: act)
        }
        transformLayerNorm.forward(
            a1, output: t2, rows: 0..<rows, eps: eps, parameters: p, statistics: kept?.statistics)
        decoder.forward(t2, rows: rows, output: logits, parameters: p)
    }

    /// The backward of `forward`: `dLogits` [rows, V] to the hidden rows' gradient `dx` [rows, H].
    func backward(
        _ dLogits: UnsafePointer<Float>, kept: Kept, rows: Int, inputGradient dx: UnsafeMutablePointer<Float>,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let h = transformDense.outFeatures
        let dNormed = FloatBuffer(count: rows * h), dActivated = FloatBuffer(count: rows * h)
        decoder.backward(
            dLogits, input: kept.normed.pointer, rows: rows, inputGradient: dNormed.pointer,
            parameters: p, gradients: g)
        transformLayerNorm.backward(
            dNormed.pointer, input: kept.activated.pointer, statistics: kept.statistics,
            inputGradient: dActivated.pointer, rows: rows, parameters: p, gradients: g)
        Kernels.activationBackward(
            dy: dActivated.pointer, x: kept.transformed.pointer, dx: dActivated.pointer,
            count: rows * h, activation: activation)
        transformDense.backward(
            dActivated.pointer, input: kept.input.pointer, rows: rows, inputGradient: dx,
            parameters: p, gradients: g)
    }
}

/// Transformers' BertForPreTraining: the encoder ("bert."), the masked-LM head and the
/// next-sentence head on the pooled output. All in one parameter block, names as transformers'.
public final class BertForPreTraining: BertHead, @unchecked Sendable {
    /// The model's configuration (config.json).
    public let config: BertConfig
    public let bert: BertModelWeights
    /// The masked-LM transform's dense layer, "cls.predictions.transform.dense".
    public let transformDense: Linear
    /// The masked-LM transform's LayerNorm, "cls.predictions.transform.LayerNorm".
    public let transformLayerNorm: LayerNorm
    /// The masked-LM decoder's own bias [V], "cls.predictions.bias" (its weight is the word embeddings).
    public let decoderBias: TensorRef
    /// The next-sentence classifier on the pooled output (2 logits), "cls.seq_relationship".
    public let seqRelationship: Linear
    /// The encoder's and both heads' tensors in one block, named as transformers'.
    public let parameters: ParameterStore
    public let encoderModel: BertModel

    /// A model of `config` with every parameter zero (load them or call `initializeWeights(seed:)`).
    public init(config: BertConfig) throws {
        try config.validate()
        self.config = config
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: true)
        transformDense = Linear(
            &layout, "cls.predictions.transform.dense", out: config.hiddenSize, in: config.hiddenSize)
        transformLayerNorm = LayerNorm(&layout, "cls.predictions.transform.LayerNorm", size: config.hiddenSize)
        decoderBias = layout.add("cls.predictions.bias", [config.vocabSize])
        seqRelationship = Linear(&layout, "cls.seq_relationship", out: 2, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
        encoderModel = BertModel(weights: bert, parameters: parameters)
    }

    /// Loads a transformers BertForPreTraining folder (config.json and its weights, `ModelWeights`).
    public convenience init(folder: URL) throws {
        let config = try BertConfig(contentsOf: folder.appendingPathComponent("config.json"))
        let file = try ModelWeights.open(in: folder)
        try self.init(config: config)
        try parameters.load(from: file)
    }

    /// The masked-LM head (its decoder tied to the word embeddings).
    public var maskedLM: MaskedLMHead {
        MaskedLMHead(
            transformDense: transformDense, transformLayerNorm: transformLayerNorm,
            decoder: Linear(weight: bert.embeddings.wordEmbeddings, bias: decoderBias),
            activation: config.activation, eps: Float(config.layerNormEps))
    }

    /// BERT's initialisation (N(0, initializer_range) weights, zero biases, unit LayerNorms, a zero
    /// padding embedding).
    public func initializeWeights(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        initializeBertParameters(parameters, config: config, rng: &rng)
        (parameters[bert.embeddings.wordEmbeddings] + config.padTokenId * config.hiddenSize)
            .update(repeating: 0, count: config.hiddenSize)
    }

    /// Forward and backward of one batch: returns the losses and adds their gradients into `grads`.
    /// The losses are means over the batch's masked positions and rows, or, with `normalizers`,
    /// sums over them divided by those counts (a rank's share of a micro-batch divides by the whole
    /// micro-batch's, so that the ranks' losses and gradients sum to its means).
    public func lossAndGradients(
        _ batch: PretrainingBatch, into grads: ParameterStore,
        dropout: Dropout? = nil, normalizers: (mlm: Int, nsp: Int)? = nil
    ) throws -> PretrainingLoss {
        let c = config, h = c.hiddenSize, v = c.vocabSize
        let n = batch.inputs.batchSize * batch.inputs.sequenceLength
        guard batch.mlmLabels.count == n else {
            throw BertError.invalidInput("masked-LM labels: \(batch.mlmLabels.count) values, expected \(n)")
        }
        if let nsp = batch.nspLabels {
            guard nsp.count == batch.inputs.batchSize else {
                throw BertError.invalidInput(
                    "next-sentence labels: \(nsp.count) values, expected \(batch.inputs.batchSize)")
            }
            guard nsp.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                throw BertError.invalidInput("next-sentence labels must be 0 or 1")
            }
        }
        let p = parameters
        let acts = try bert.forwardForTraining(batch.inputs, parameters: p, dropout: dropout)
        let tokens = acts.tokens
        var result = PretrainingLoss()

        // Masked positions among the real tokens, in token order.
        var rows: [Int] = [], labels: [Int32] = []
        for (row, flat) in tokens.origin.enumerated() where batch.mlmLabels[flat] != -100 {
            let label = batch.mlmLabels[flat]
            guard label >= 0 && Int(label) < v else {
                throw BertError.invalidInput(
                    "masked-LM label \(label) at flat position \(flat) is outside the vocabulary (size \(v))")
            }
            rows.append(row)
            labels.append(label)
        }
        var dHidden = [Float](repeating: 0, count: n * h)
        let count = rows.count
        if count > 0 {
            let head = maskedLM
            let kept = MaskedLMHead.Kept(rows: count, hidden: h)
            for (i, row) in rows.enumerated() {
                (kept.input.pointer + i * h).update(from: acts.output.pointer + row * h, count: h)
            }
            let logits = FloatBuffer(count: count * v)
            head.forward(kept.input.pointer, rows: count, logits: logits.pointer, parameters: p, kept: kept)
            for i in 0..<count where Kernels.argmax(logits.pointer + i * v, count: v) == Int(labels[i]) {
                result.mlmCorrect += 1
            }
            let denominator = max(normalizers?.mlm ?? count, 1)
            let sum = labels.withUnsafeBufferPointer {
                Kernels.crossEntropy(
                    logits.pointer, labels: $0.baseAddress!, cols: v, rows: 0..<count, scale: 1 / Float(denominator))
            }
            result.mlm = sum / Double(denominator)
            result.mlmCount = count
            let dx = FloatBuffer(count: count * h)
            head.backward(
                logits.pointer, kept: kept, rows: count, inputGradient: dx.pointer, parameters: p, gradients: grads)
            for (i, row) in rows.enumerated() {
                let flat = tokens.origin[row]
                for j in 0..<h { dHidden[flat * h + j] += dx.pointer[i * h + j] }
            }
        }
        var dPooled: [Float]? = nil
        if let nsp = batch.nspLabels, let pooled = acts.poolerOutput {
            let b = batch.inputs.batchSize
            let logits = FloatBuffer(count: b * 2)
            seqRelationship.forward(pooled.pointer, rows: b, output: logits.pointer, parameters: p)
            for i in 0..<b where (logits.pointer[2 * i + 1] > logits.pointer[2 * i] ? 1 : 0) == nsp[i] {
                result.nspCorrect += 1
            }
            let denominator = max(normalizers?.nsp ?? b, 1)
            let sum = nsp.withUnsafeBufferPointer {
                Kernels.crossEntropy(
                    logits.pointer, labels: $0.baseAddress!, cols: 2, rows: 0..<b, scale: 1 / Float(denominator))
            }
            result.nsp = sum / Double(denominator)
            result.nspCount = b
            let dp = FloatBuffer(count: b * h)
            seqRelationship.backward(
                logits.pointer, input: pooled.pointer, rows: b, inputGradient: dp.pointer,
                parameters: p, gradients: grads)
            dPooled = dp.toArray()
        }
        bert.backward(acts, dHidden: count > 0 ? dHidden : nil, dPooled: dPooled, parameters: p, gradients: grads)
        return result
    }

    /// Writes config.json (architectures BertForPreTraining) and model.safetensors with
    /// transformers' names (the decoder is tied to the word embeddings and not written twice).
    public func save(to folder: URL) throws {
        var c = config
        c.architectures = ["BertForPreTraining"]
        c.extra["tie_word_embeddings"] = true
        try writeModelFolder(config: c, parameters: parameters, to: folder)
    }

    /// Masked-LM probabilities at the given flat positions (b·S + p) of a batch: [positions, vocab],
    /// through the encoder's inference forward and one decoder product for all positions.
    public func maskedTokenProbabilities(_ batch: EncoderBatch, positions: [Int]) throws -> [[Float]] {
        let h = config.hiddenSize, v = config.vocabSize
        return try encoderModel.withHiddenStates(batch) { tokens, hidden, _ in
            var rowOf: [Int: Int] = [:]
            for (row, flat) in tokens.origin.enumerated() { rowOf[flat] = row }
            let count = positions.count
            let x = FloatBuffer(count: count * h), scratch = FloatBuffer(count: count * h)
            for (i, position) in positions.enumerated() {
                guard let row = rowOf[position] else { throw BertError.invalidInput("position \(position) is padding") }
                (x.pointer + i * h).update(from: hidden + row * h, count: h)
            }
            let logits = FloatBuffer(count: count * v)
            maskedLM.forward(
                x.pointer, rows: count, logits: logits.pointer, parameters: parameters, scratch: scratch.pointer)
            Kernels.softmax(logits.pointer, cols: v, ld: v, rows: 0..<count)
            return (0..<count).map { Array(UnsafeBufferPointer(start: logits.pointer + $0 * v, count: v)) }
        }
    }
}
