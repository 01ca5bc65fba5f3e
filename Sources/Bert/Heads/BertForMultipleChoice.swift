import BertCompute
import Foundation

/// Transformers' BertForMultipleChoice: each (context, ending) pair goes through the encoder, the
/// pooled output (with dropout) through "classifier" (one score); a softmax across the choices.
public final class BertForMultipleChoice: TaskHead, @unchecked Sendable {
    /// The encoder's configuration, architectures ["BertForMultipleChoice"] and no labels.
    public let config: BertConfig
    public let bert: BertModelWeights
    /// The "classifier" layer: the pooled output [H] to one score per (context, ending) row.
    public let classifier: Linear
    /// The encoder's and the classifier's tensors in one block.
    public let parameters: ParameterStore
    public let encoderModel: BertModel

    /// A model of `config` with every parameter zero (load or initialise them next).
    public init(config: BertConfig) throws {
        try config.validate()
        var c = config
        c.architectures = ["BertForMultipleChoice"]
        for k in ["id2label", "label2id", "problem_type"] { c.extra.removeValue(forKey: k) }
        self.config = c
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: true)
        classifier = Linear(&layout, "classifier", out: 1, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
        encoderModel = BertModel(weights: bert, parameters: parameters)
    }

    public static func fromPretrained(folder: URL, settings: Void, seed: UInt64) throws -> (
        model: BertForMultipleChoice, initialised: [String]
    ) {
        let (config, file) = try openCheckpoint(folder)
        let model = try BertForMultipleChoice(config: config)
        return (model, try loadPretrainedEncoder(model.parameters, config: config, file: file, seed: seed))
    }

    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        guard file.info("classifier.weight")?.shape == [1, config.hiddenSize] else {
            throw BertError.wrongModel(
                path: folder.path,
                reason:
                    "no classifier.weight of shape [1, \(config.hiddenSize)] (not a BertForMultipleChoice; fine-tune "
                    + "it first)"
            )
        }
        try self.init(config: config)
        try parameters.layout.check(against: file)
        try parameters.load(from: file)
    }

    /// Scores [questions × choices] with dropout off; the batch holds `choices` rows per question.
    public func scores(_ batch: EncoderBatch) throws -> [Float] {
        try encoderModel.withHiddenStates(batch) { tokens, _, pooled in
            guard let pooled else { throw BertError.invalidInput("the encoder has no pooler") }
            let out = FloatBuffer(count: tokens.batchSize)
            classifier.forward(pooled.pointer, rows: tokens.batchSize, output: out.pointer, parameters: parameters)
            return out.toArray()
        }
    }

    /// Forward and backward: the batch holds `choices` consecutive rows per question; `labels`
    /// the right choice of each. Returns the mean cross-entropy across choices.
    public func lossAndGradients(
        _ batch: EncoderBatch, choices: Int, labels: [Int32], into grads: ParameterStore,
        dropout: Dropout? = nil
    ) throws -> (loss: Double, logits: [Float]) {
        guard choices >= 2, batch.batchSize == labels.count * choices else {
            throw BertError.invalidInput(
                "multiple choice: \(batch.batchSize) rows for \(labels.count) questions of \(choices) choices")
        }
        guard labels.allSatisfy({ $0 >= 0 && Int($0) < choices }) else {
            throw BertError.invalidInput("a label is outside 0..<\(choices)")
        }
        let q = labels.count
        return try pooledHeadLossAndGradients(
            bert: bert, classifier: classifier, config: config, parameters: parameters,
            batch: batch, grads: grads, dropout: dropout
        ) { logits in
            labels.withUnsafeBufferPointer {
                Kernels.crossEntropy(logits, labels: $0.baseAddress!, cols: choices, rows: 0..<q, scale: 1 / Float(q))
            } / Double(q)
        }
    }
}

/// The right choice of each question of a batch that holds `choices` consecutive rows per question.
public struct ChoiceTargets: Sendable {
    /// Endings per question: the consecutive rows of each (at least 2).
    public var choices: Int
    /// The right choice of each question, in 0..<choices.
    public var labels: [Int32]
    /// Targets of questions with `choices` endings each.
    public init(choices: Int, labels: [Int32]) {
        self.choices = choices
        self.labels = labels
    }
}

extension BertForMultipleChoice {
    public typealias Settings = Void

    /// The choice scores (`scores`): one per row.
    public func logits(_ batch: EncoderBatch) throws -> [Float] { try scores(batch) }

    public func lossAndGradients(
        _ batch: EncoderBatch, targets: ChoiceTargets, into grads: ParameterStore, dropout: Dropout?
    ) throws -> Double {
        try lossAndGradients(batch, choices: targets.choices, labels: targets.labels, into: grads, dropout: dropout)
            .loss
    }
}
