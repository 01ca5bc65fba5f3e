import BertCompute
import Foundation

/// Transformers' BertForTokenClassification: the encoder ("bert.", no pooler), dropout on every
/// token's last hidden state and a linear classifier ("classifier") per token.
public final class BertForTokenClassification: TaskHead, @unchecked Sendable {
    /// The encoder's configuration with the head's architectures, id2label and label2id.
    public let config: BertConfig
    /// Tag names by id (e.g. "O", "B-PER", "I-PER").
    public let labels: [String]
    public let bert: BertModelWeights
    /// The "classifier" layer: each token's hidden state [H] to `numLabels` logits.
    public let classifier: Linear
    /// The encoder's and the classifier's tensors in one block.
    public let parameters: ParameterStore
    public let encoderModel: BertModel

    /// The number of tags.
    public var numLabels: Int { labels.count }

    /// A model of `config` with every parameter zero; the tags must be distinct, at least one.
    public init(config: BertConfig, labels: [String]) throws {
        try config.validate()
        guard labels.count >= 1, Set(labels).count == labels.count else {
            throw BertError.invalidInput("tag names must be distinct and not empty: \(labels)")
        }
        var c = config
        c.architectures = ["BertForTokenClassification"]
        c.extra.removeValue(forKey: "problem_type")
        c.extra["id2label"] = Dictionary(
            uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) })
        c.extra["label2id"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
        self.config = c
        self.labels = labels
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: false)
        classifier = Linear(&layout, "classifier", out: labels.count, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
        encoderModel = BertModel(weights: bert, parameters: parameters)
    }

    /// A new tagging head on a pretrained encoder; returns the newly initialised tensor names.
    public static func fromPretrained(folder: URL, labels: [String], seed: UInt64) throws -> (
        model: BertForTokenClassification, initialised: [String]
    ) {
        let (config, file) = try openCheckpoint(folder)
        var base = config
        for k in ["id2label", "label2id", "problem_type"] { base.extra.removeValue(forKey: k) }
        let model = try BertForTokenClassification(config: base, labels: labels)
        return (model, try loadPretrainedEncoder(model.parameters, config: base, file: file, seed: seed))
    }

    /// Loads a BertForTokenClassification folder (saved here or by transformers).
    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        guard file.info("classifier.weight") != nil else {
            throw BertError.wrongModel(
                path: folder.path, reason: "no classifier.weight (not a BertForTokenClassification; fine-tune it first)"
            )
        }
        try self.init(config: config, labels: try labelList(config, folder: folder))
        try parameters.layout.check(against: file)
        try parameters.load(from: file)
    }

    /// Logits [batch × sequence, numLabels] with dropout off (zeros at padding).
    public func logits(_ batch: EncoderBatch) throws -> [Float] {
        try encoderModel.withHiddenStates(batch) { tokens, hidden, _ in
            let t = tokens.tokenCount, n = numLabels
            let out = FloatBuffer(count: max(1, t * n))
            classifier.forward(hidden, rows: t, output: out.pointer, parameters: parameters)
            return tokens.unpack(out.pointer, cols: n)
        }
    }

    /// Forward and backward of one batch: labels per position (−100 where no loss is taken);
    /// returns the mean cross-entropy over labelled positions and adds its gradients into `grads`.
    public func lossAndGradients(
        _ batch: EncoderBatch, labels: [Int32], into grads: ParameterStore,
        dropout: Dropout? = nil
    ) throws -> Double {
        let h = config.hiddenSize, n = numLabels
        guard labels.count == batch.batchSize * batch.sequenceLength else {
            throw BertError.invalidInput(
                "token labels: \(labels.count) values, expected \(batch.batchSize * batch.sequenceLength)")
        }
        guard labels.allSatisfy({ $0 == -100 || ($0 >= 0 && Int($0) < n) }) else {
            throw BertError.invalidInput("a tag id is outside 0..<\(n)")
        }
        let p = parameters
        let acts = try bert.forwardForTraining(batch, parameters: p, dropout: dropout)
        // The labelled tokens, in packed order.
        var rows: [Int] = [], targets: [Int32] = []
        for (row, flat) in acts.tokens.origin.enumerated() where labels[flat] != -100 {
            rows.append(row)
            targets.append(labels[flat])
        }
        let count = rows.count
        guard count > 0 else { return 0 }
        let x = FloatBuffer(count: count * h)
        for (i, row) in rows.enumerated() { (x.pointer + i * h).update(from: acts.output.pointer + row * h, count: h) }
        var mask: FloatBuffer? = nil
        if let d = dropout, let probability = config.classifierDropout(during: d) {
            // One mask row per packed token (the same whichever tokens are labelled).
            let tokens = acts.tokens.tokenCount
            let all = FloatBuffer(count: tokens * h)
            d.sequenceMasks(
                all.pointer, starts: acts.tokens.sequenceStart, lengths: acts.tokens.sequenceLength, cols: h,
                probability: probability, stream: Dropout.tokenClassifierStream)
            let m = FloatBuffer(count: count * h)
            for (i, row) in rows.enumerated() { (m.pointer + i * h).update(from: all.pointer + row * h, count: h) }
            for i in 0..<(count * h) { x.pointer[i] *= m.pointer[i] }
            mask = m
        }
        let logits = FloatBuffer(count: count * n)
        classifier.forward(x.pointer, rows: count, output: logits.pointer, parameters: p)
        let loss =
            targets.withUnsafeBufferPointer {
                Kernels.crossEntropy(
                    logits.pointer, labels: $0.baseAddress!, cols: n, rows: 0..<count, scale: 1 / Float(count))
            } / Double(count)
        let dx = FloatBuffer(count: count * h)
        classifier.backward(
            logits.pointer, input: x.pointer, rows: count, inputGradient: dx.pointer, parameters: p,
            gradients: grads)
        if let m = mask { for i in 0..<(count * h) { dx.pointer[i] *= m.pointer[i] } }
        var dHidden = [Float](repeating: 0, count: batch.batchSize * batch.sequenceLength * h)
        for (i, row) in rows.enumerated() {
            let flat = acts.tokens.origin[row]
            for j in 0..<h { dHidden[flat * h + j] = dx.pointer[i * h + j] }
        }
        bert.backward(acts, dHidden: dHidden, dPooled: nil, parameters: p, gradients: grads)
        return loss
    }
}

extension BertForTokenClassification {
    /// The tag names, in id order.
    public typealias Settings = [String]

    public static func fromPretrained(folder: URL, settings labels: [String], seed: UInt64) throws -> (
        model: BertForTokenClassification, initialised: [String]
    ) {
        try fromPretrained(folder: folder, labels: labels, seed: seed)
    }

    /// `targets`: a tag id per position of the padded batch (−100 where no loss is taken).
    public func lossAndGradients(
        _ batch: EncoderBatch, targets: [Int32], into grads: ParameterStore, dropout: Dropout?
    ) throws -> Double {
        try lossAndGradients(batch, labels: targets, into: grads, dropout: dropout)
    }
}
