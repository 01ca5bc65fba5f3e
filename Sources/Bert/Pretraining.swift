import BertCompute
import Foundation

/// A batch for pretraining: the encoder inputs, the masked-LM labels ([B, S], the original token
/// id at each position chosen for prediction, −100 elsewhere, as transformers) and the
/// next-sentence labels ([B], 0 = IsNext, 1 = NotNext).
public struct PretrainingBatch: Sendable {
    public var inputs: EncoderBatch
    public var mlmLabels: [Int32]
    public var nspLabels: [Int32]?

    public init(inputs: EncoderBatch, mlmLabels: [Int32], nspLabels: [Int32]?) {
        self.inputs = inputs
        self.mlmLabels = mlmLabels
        self.nspLabels = nspLabels
    }
}

/// The losses of one batch (means, as transformers) and the counts behind the accuracies.
public struct PretrainingLoss: Sendable {
    public var total: Double { mlm + nsp }
    public var mlm = 0.0
    public var nsp = 0.0
    public var mlmCorrect = 0, mlmCount = 0
    public var nspCorrect = 0, nspCount = 0
}

/// Transformers' BertForPreTraining: the encoder ("bert."), the masked-LM head (dense + activation
/// + LayerNorm, then a decoder tied to the word embeddings plus its own bias) and the
/// next-sentence head on the pooled output. All in one parameter block, names as transformers'.
public final class BertForPreTraining: @unchecked Sendable {
    public let config: BertConfig
    public let bert: BertModelWeights
    public let transformDense: Linear
    public let transformLayerNorm: LayerNormParams
    public let decoderBias: TensorRef
    public let seqRelationship: Linear
    public let parameters: ParameterStore

    public init(config: BertConfig) throws {
        try config.validate()
        self.config = config
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: true)
        transformDense = Linear(&layout, "cls.predictions.transform.dense", out: config.hiddenSize, in: config.hiddenSize)
        transformLayerNorm = LayerNormParams(&layout, "cls.predictions.transform.LayerNorm", size: config.hiddenSize)
        decoderBias = layout.add("cls.predictions.bias", [config.vocabSize])
        seqRelationship = Linear(&layout, "cls.seq_relationship", out: 2, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
    }

    /// Loads a transformers BertForPreTraining folder (config.json + model.safetensors).
    public convenience init(folder: URL) throws {
        let config = try BertConfig(contentsOf: folder.appendingPathComponent("config.json"))
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors")) } catch let e as SafeTensorsError {
            throw BertError(e.description)
        }
        try self.init(config: config)
        try parameters.load(from: file)
    }

    /// BERT's initialisation (N(0, initializer_range) weights, zero biases, unit LayerNorms, a zero
    /// padding embedding).
    public func initializeWeights(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        initializeBertParameters(parameters, config: config, rng: &rng)
        (parameters[bert.embeddings.wordEmbeddings] + config.padTokenId * config.hiddenSize)
            .update(repeating: 0, count: config.hiddenSize)
    }

    public func makeGradients() throws -> ParameterStore { try ParameterStore(layout: parameters.layout) }

    /// Forward and backward of one batch: returns the losses and adds their gradients into `grads`.
    public func lossAndGradients(_ batch: PretrainingBatch, into grads: ParameterStore,
                                 dropout: Dropout? = nil) throws -> PretrainingLoss {
        let c = config, h = c.hiddenSize, v = c.vocabSize
        let n = batch.inputs.batchSize * batch.inputs.sequenceLength
        guard batch.mlmLabels.count == n else {
            throw BertError("masked-LM labels: \(batch.mlmLabels.count) values, expected \(n)")
        }
        if let nsp = batch.nspLabels {
            guard nsp.count == batch.inputs.batchSize else {
                throw BertError("next-sentence labels: \(nsp.count) values, expected \(batch.inputs.batchSize)")
            }
            guard nsp.allSatisfy({ $0 == 0 || $0 == 1 }) else { throw BertError("next-sentence labels must be 0 or 1") }
        }
        let p = parameters
        let acts = try bert.forwardForTraining(batch.inputs, parameters: p, dropout: dropout)
        let packed = acts.packed
        var result = PretrainingLoss()

        // Masked positions among the real tokens, in packed order.
        var rows: [Int] = [], labels: [Int32] = []
        for (row, flat) in packed.origin.enumerated() where batch.mlmLabels[flat] != -100 {
            let label = batch.mlmLabels[flat]
            guard label >= 0 && Int(label) < v else {
                throw BertError("masked-LM label \(label) at flat position \(flat) is outside the vocabulary (size \(v))")
            }
            rows.append(row)
            labels.append(label)
        }
        var dHidden = [Float](repeating: 0, count: n * h)
        let count = rows.count
        if count > 0 {
            let x = FloatBuffer(count: count * h), t1 = FloatBuffer(count: count * h), a1 = FloatBuffer(count: count * h)
            let t2 = FloatBuffer(count: count * h), mean = FloatBuffer(count: count), rstd = FloatBuffer(count: count)
            for (i, row) in rows.enumerated() { (x.pointer + i * h).update(from: acts.output.pointer + row * h, count: h) }
            linear(x.pointer, rows: count, inFeatures: h, weight: p[transformDense.weight], outFeatures: h,
                   bias: p[transformDense.bias], output: t1.pointer) { _ in }
            Kernels.activation(t1.pointer, output: a1.pointer, cols: h, rows: 0..<count, activation: c.activation)
            Kernels.layerNorm(a1.pointer, output: t2.pointer, gamma: p[transformLayerNorm.weight], beta: p[transformLayerNorm.bias],
                              eps: Float(c.layerNormEps), cols: h, rows: 0..<count, mean: mean.pointer, rstd: rstd.pointer)
            let logits = FloatBuffer(count: count * v)
            let wordEmbeddings = bert.embeddings.wordEmbeddings
            linear(t2.pointer, rows: count, inFeatures: h, weight: p[wordEmbeddings], outFeatures: v,
                   bias: p[decoderBias], output: logits.pointer) { _ in }
            for i in 0..<count {
                let row = logits.pointer + i * v
                var best = 0
                for j in 1..<v where row[j] > row[best] { best = j }
                if best == Int(labels[i]) { result.mlmCorrect += 1 }
            }
            let sum = labels.withUnsafeBufferPointer {
                Kernels.crossEntropy(logits.pointer, labels: $0.baseAddress!, cols: v, rows: 0..<count, scale: 1 / Float(count))
            }
            result.mlm = sum / Double(count)
            result.mlmCount = count
            // Backward through the decoder (tied), the LayerNorm, the activation and the dense.
            let dt2 = FloatBuffer(count: count * h)
            BLAS.linearBackward(dy: logits.pointer, x: t2.pointer, w: p[wordEmbeddings], m: count, n: v, k: h,
                                dx: dt2.pointer, dw: grads[wordEmbeddings], db: grads[decoderBias])
            let da1 = FloatBuffer(count: count * h)
            Kernels.layerNormBackward(dy: dt2.pointer, x: a1.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                      gamma: p[transformLayerNorm.weight], dx: da1.pointer,
                                      dgamma: grads[transformLayerNorm.weight], dbeta: grads[transformLayerNorm.bias],
                                      cols: h, rows: 0..<count)
            Kernels.activationBackward(dy: da1.pointer, x: t1.pointer, dx: da1.pointer, count: count * h, activation: c.activation)
            let dx = FloatBuffer(count: count * h)
            BLAS.linearBackward(dy: da1.pointer, x: x.pointer, w: p[transformDense.weight], m: count, n: h, k: h,
                                dx: dx.pointer, dw: grads[transformDense.weight], db: grads[transformDense.bias])
            for (i, row) in rows.enumerated() {
                let flat = packed.origin[row]
                for j in 0..<h { dHidden[flat * h + j] += dx.pointer[i * h + j] }
            }
        }
        var dPooled: [Float]? = nil
        if let nsp = batch.nspLabels, let pooled = acts.poolerOutput {
            let b = batch.inputs.batchSize
            let logits = FloatBuffer(count: b * 2)
            linear(pooled.pointer, rows: b, inFeatures: h, weight: p[seqRelationship.weight], outFeatures: 2,
                   bias: p[seqRelationship.bias], output: logits.pointer) { _ in }
            for i in 0..<b where (logits.pointer[2 * i + 1] > logits.pointer[2 * i] ? 1 : 0) == nsp[i] { result.nspCorrect += 1 }
            let sum = nsp.withUnsafeBufferPointer {
                Kernels.crossEntropy(logits.pointer, labels: $0.baseAddress!, cols: 2, rows: 0..<b, scale: 1 / Float(b))
            }
            result.nsp = sum / Double(b)
            result.nspCount = b
            let dp = FloatBuffer(count: b * h)
            BLAS.linearBackward(dy: logits.pointer, x: pooled.pointer, w: p[seqRelationship.weight], m: b, n: 2, k: h,
                                dx: dp.pointer, dw: grads[seqRelationship.weight], db: grads[seqRelationship.bias])
            dPooled = dp.toArray()
        }
        bert.backward(acts, dHidden: count > 0 ? dHidden : nil, dPooled: dPooled, parameters: p, gradients: grads)
        return result
    }
}
