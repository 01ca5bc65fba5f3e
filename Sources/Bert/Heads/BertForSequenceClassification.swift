import BertCompute
import Foundation

/// What a sequence head predicts: one of N labels (softmax cross-entropy) or a number (mean
/// squared error), as transformers' problem_type "single_label_classification" / "regression".
public enum SequenceTask: String, Sendable {
    /// One of N labels, trained with softmax cross-entropy.
    case classification = "single_label_classification"
    /// One number, trained with mean squared error.
    case regression
}

/// Transformers' BertForSequenceClassification: the encoder ("bert.", with its pooler), dropout on
/// the pooled `[CLS]` output and a linear classifier ("classifier"). One parameter block, names as
/// transformers', so a model saved here loads there and back.
public final class BertForSequenceClassification: TaskHead, @unchecked Sendable {
    /// The encoder's configuration with the head's architectures, problem_type, id2label and label2id.
    public let config: BertConfig
    /// Classification or regression.
    public let task: SequenceTask
    /// Label names by id (classification); ["score"] for regression.
    public let labels: [String]
    public let bert: BertModelWeights
    /// The "classifier" layer: the pooled output [H] to `numLabels` logits.
    public let classifier: Linear
    /// The encoder's and the classifier's tensors in one block.
    public let parameters: ParameterStore
    public let encoderModel: BertModel

    /// Outputs per example: the number of labels (1 for regression).
    public var numLabels: Int { labels.count }

    /// A model of `config` with every parameter zero; classification needs 2 or more distinct
    /// labels, regression exactly one.
    public init(config: BertConfig, task: SequenceTask, labels: [String]) throws {
        try config.validate()
        switch task {
        case .classification:
            guard labels.count >= 2 else {
                throw BertError.invalidInput("classification needs at least 2 labels, got \(labels.count)")
            }
            guard Set(labels).count == labels.count else {
                throw BertError.invalidInput("label names must be distinct: \(labels)")
            }
        case .regression:
            guard labels.count == 1 else { throw BertError.invalidInput("regression has exactly one output") }
        }
        var c = config
        c.architectures = ["BertForSequenceClassification"]
        c.extra["problem_type"] = task.rawValue
        c.extra["id2label"] = Dictionary(
            uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) })
        c.extra["label2id"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
        self.config = c
        self.task = task
        self.labels = labels
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: true)
        classifier = Linear(&layout, "classifier", out: labels.count, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
        encoderModel = BertModel(weights: bert, parameters: parameters)
    }

    /// A new head on a pretrained encoder (a BertModel, BertForPreTraining, sentence-transformers
    /// or BertFor* folder): the encoder's tensors are loaded (with or without the `bert.` prefix),
    /// the classifier (and a pooler the checkpoint lacks) initialised as BERT does. Returns the
    /// names of the tensors that were newly initialised.
    public static func fromPretrained(folder: URL, task: SequenceTask, labels: [String], seed: UInt64) throws
        -> (model: BertForSequenceClassification, initialised: [String])
    {
        let (config, file) = try openCheckpoint(folder)
        var base = config
        base.extra.removeValue(forKey: "id2label")
        base.extra.removeValue(forKey: "label2id")
        base.extra.removeValue(forKey: "problem_type")
        let model = try BertForSequenceClassification(config: base, task: task, labels: labels)
        let initialised = try loadPretrainedEncoder(model.parameters, config: base, file: file, seed: seed)
        return (model, initialised)
    }

    /// Loads a BertForSequenceClassification folder (saved here or by transformers).
    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        let problem = config.extra["problem_type"] as? String
        // Multi-label heads take a sigmoid per label, not a softmax: refused, not mispredicted.
        if let problem, problem != SequenceTask.classification.rawValue, problem != SequenceTask.regression.rawValue {
            throw BertError.invalidConfig(
                source: folder.appendingPathComponent("config.json").path,
                reason: "problem_type \(problem) is not supported (single_label_classification and regression are)")
        }
        // transformers' default when config.json names no labels.
        var labels = config.extra["id2label"] == nil ? ["LABEL_0", "LABEL_1"] : try labelList(config, folder: folder)
        let task: SequenceTask = problem == "regression" || labels.count == 1 ? .regression : .classification
        if task == .regression && labels.count != 1 { labels = ["score"] }
        guard file.info("classifier.weight") != nil else {
            throw BertError.wrongModel(
                path: folder.path,
                reason: "no classifier.weight (not a BertForSequenceClassification; fine-tune it first)")
        }
        try self.init(config: config, task: task, labels: labels)
        try parameters.layout.check(against: file)
        try parameters.load(from: file)
    }

    /// Logits [batch, numLabels] with dropout off.
    public func logits(_ batch: EncoderBatch) throws -> [Float] {
        try encoderModel.withHiddenStates(batch) { tokens, _, pooled in
            guard let pooled else { throw BertError.invalidInput("the encoder has no pooler") }
            let out = FloatBuffer(count: tokens.batchSize * numLabels)
            classifier.forward(pooled.pointer, rows: tokens.batchSize, output: out.pointer, parameters: parameters)
            return out.toArray()
        }
    }

    /// Forward and backward of one batch: returns the mean loss and adds its gradients into
    /// `grads`. Classification labels are label ids (`classLabels`), regression targets `targets`.
    public func lossAndGradients(
        _ batch: EncoderBatch, classLabels: [Int32]? = nil, targets: [Float]? = nil,
        into grads: ParameterStore, dropout: Dropout? = nil
    ) throws -> (loss: Double, logits: [Float]) {
        let b = batch.batchSize, n = numLabels
        switch task {
        case .classification:
            guard let labels = classLabels, labels.count == b else {
                throw BertError.invalidInput("classification needs \(b) label ids")
            }
            guard labels.allSatisfy({ $0 >= 0 && Int($0) < n }) else {
                throw BertError.invalidInput("a label id is outside 0..<\(n)")
            }
        case .regression:
            guard let t = targets, t.count == b else { throw BertError.invalidInput("regression needs \(b) targets") }
            guard t.allSatisfy(\.isFinite) else { throw BertError.invalidInput("a regression target is not finite") }
        }
        return try pooledHeadLossAndGradients(
            bert: bert, classifier: classifier, config: config, parameters: parameters,
            batch: batch, grads: grads, dropout: dropout
        ) { logits in
            switch task {
            case .classification:
                return classLabels!.withUnsafeBufferPointer {
                    Kernels.crossEntropy(logits, labels: $0.baseAddress!, cols: n, rows: 0..<b, scale: 1 / Float(b))
                } / Double(b)
            case .regression:
                return Kernels.meanSquaredError(logits, targets: targets!, count: b)
            }
        }
    }
}

/// Forward and backward through the encoder, dropout on the pooled [CLS] output (config's
/// classifier_dropout when set, else the hidden-dropout probability, as transformers) and a linear
/// head. `loss` gets the head's logits [rows, outputs], returns the loss and leaves the loss's
/// gradient in their place. Returns the loss and the logits.
func pooledHeadLossAndGradients(
    bert: BertModelWeights, classifier: Linear, config: BertConfig, parameters p: ParameterStore,
    batch: EncoderBatch, grads: ParameterStore, dropout: Dropout?,
    loss: (UnsafeMutablePointer<Float>) throws -> Double
) throws -> (loss: Double, logits: [Float]) {
    let b = batch.batchSize, h = config.hiddenSize, n = classifier.outFeatures
    let acts = try bert.forwardForTraining(batch, parameters: p, dropout: dropout)
    guard let pooled = acts.poolerOutput else { throw BertError.invalidInput("the encoder has no pooler") }
    let x = FloatBuffer(count: b * h)
    x.pointer.update(from: pooled.pointer, count: b * h)
    var mask: FloatBuffer? = nil
    if let d = dropout, let probability = config.classifierDropout(during: d) {
        let m = FloatBuffer(count: b * h)
        d.sequenceMasks(
            m.pointer, starts: Array(0..<b), lengths: Array(repeating: 1, count: b), cols: h, probability: probability,
            stream: Dropout.classifierStream)
        for i in 0..<(b * h) { x.pointer[i] *= m.pointer[i] }
        mask = m
    }
    let logits = FloatBuffer(count: b * n)
    classifier.forward(x.pointer, rows: b, output: logits.pointer, parameters: p)
    let values = logits.toArray()
    let value = try loss(logits.pointer)
    let dx = FloatBuffer(count: b * h)
    classifier.backward(
        logits.pointer, input: x.pointer, rows: b, inputGradient: dx.pointer, parameters: p, gradients: grads)
    if let m = mask { for i in 0..<(b * h) { dx.pointer[i] *= m.pointer[i] } }
    bert.backward(acts, dHidden: nil, dPooled: dx.toArray(), parameters: p, gradients: grads)
    return (value, values)
}

extension Kernels {
    /// Mean squared error of `count` predictions against targets, in place: returns the mean
    /// loss and replaces each prediction by the loss's gradient, 2 (p − t) / count.
    public static func meanSquaredError(_ predictions: UnsafeMutablePointer<Float>, targets: [Float], count: Int)
        -> Double
    {
        var total = 0.0
        for i in 0..<count {
            let d = predictions[i] - targets[i]
            total += Double(d) * Double(d)
            predictions[i] = 2 * d / Float(count)
        }
        return total / Double(count)
    }
}

/// What a sequence head is made with: its task and label names (["score"] for regression).
public struct SequenceHeadSettings: Sendable {
    /// Classification or regression.
    public var task: SequenceTask
    /// Label names by id (2 or more, distinct); ["score"] for regression.
    public var labels: [String]
    /// Settings from a task and its label names.
    public init(task: SequenceTask, labels: [String]) {
        self.task = task
        self.labels = labels
    }
}

/// What a sequence head's loss compares with: a label id per row, or a value per row.
public enum SequenceTargets: Sendable {
    /// A label id per row (classification).
    case classes([Int32])
    /// A target value per row (regression).
    case values([Float])
}

extension BertForSequenceClassification {
    public static func fromPretrained(folder: URL, settings: SequenceHeadSettings, seed: UInt64) throws -> (
        model: BertForSequenceClassification, initialised: [String]
    ) {
        try fromPretrained(folder: folder, task: settings.task, labels: settings.labels, seed: seed)
    }

    public func lossAndGradients(
        _ batch: EncoderBatch, targets: SequenceTargets, into grads: ParameterStore, dropout: Dropout?
    ) throws -> Double {
        switch targets {
        case .classes(let ids):
            return try lossAndGradients(batch, classLabels: ids, into: grads, dropout: dropout).loss
        case .values(let values):
            return try lossAndGradients(batch, targets: values, into: grads, dropout: dropout).loss
        }
    }
}
