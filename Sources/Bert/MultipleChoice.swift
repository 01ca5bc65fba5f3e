import BertCompute
import BertTokenizer
import Foundation

/// Transformers' BertForMultipleChoice: each (context, ending) pair goes through the encoder, the
/// pooled output (with dropout) through "classifier" (one score); a softmax across the choices.
public final class BertForMultipleChoice: @unchecked Sendable {
    public let config: BertConfig
    public let bert: BertModelWeights
    public let classifier: Linear
    public let parameters: ParameterStore

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
    }

    public static func fromPretrained(folder: URL, seed: UInt64) throws -> (model: BertForMultipleChoice, initialised: [String]) {
        let (config, file) = try openCheckpoint(folder)
        let model = try BertForMultipleChoice(config: config)
        return (model, try loadPretrainedEncoder(model.parameters, config: config, file: file, seed: seed))
    }

    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        guard file.info("classifier.weight")?.shape == [1, config.hiddenSize] else {
            throw BertError("\(folder.path): no classifier.weight of shape [1, \(config.hiddenSize)] (not a BertForMultipleChoice; fine-tune it first)")
        }
        try self.init(config: config)
        try parameters.layout.check(against: file)
        try parameters.load(from: file)
    }

    public func save(to folder: URL) throws { try saveTaskModel(config: config, parameters: parameters, to: folder) }

    /// Scores [questions × choices] with dropout off; the batch holds `choices` rows per question.
    public func scores(_ batch: EncoderBatch) throws -> [Float] {
        let acts = try bert.forwardForTraining(batch, parameters: parameters)
        guard let pooled = acts.poolerOutput else { throw BertError("the encoder has no pooler") }
        let out = FloatBuffer(count: batch.batchSize)
        linear(pooled.pointer, rows: batch.batchSize, inFeatures: config.hiddenSize, weight: parameters[classifier.weight],
               outFeatures: 1, bias: parameters[classifier.bias], output: out.pointer) { _ in }
        return out.toArray()
    }

    /// Forward and backward: the batch holds `choices` consecutive rows per question; `labels`
    /// the right choice of each. Returns the mean cross-entropy across choices.
    public func lossAndGradients(_ batch: EncoderBatch, choices: Int, labels: [Int32], into grads: ParameterStore,
                                 dropout: Dropout? = nil) throws -> (loss: Double, logits: [Float]) {
        guard choices >= 2, batch.batchSize == labels.count * choices else {
            throw BertError("multiple choice: \(batch.batchSize) rows for \(labels.count) questions of \(choices) choices")
        }
        guard labels.allSatisfy({ $0 >= 0 && Int($0) < choices }) else { throw BertError("a label is outside 0..<\(choices)") }
        let q = labels.count
        return try pooledHeadLossAndGradients(bert: bert, classifier: classifier, config: config, parameters: parameters,
                                              batch: batch, grads: grads, dropout: dropout) { logits in
            labels.withUnsafeBufferPointer {
                Kernels.crossEntropy(logits, labels: $0.baseAddress!, cols: choices, rows: 0..<q, scale: 1 / Float(q))
            } / Double(q)
        }
    }
}

/// A multiple-choice question: a context, its endings and the right ending's index.
public struct ChoiceExample: Sendable, Equatable {
    public var context: String
    public var endings: [String]
    public var label: Int?
    public var source: String
    public init(context: String, endings: [String], label: Int? = nil, source: String = "") {
        self.context = context
        self.endings = endings
        self.label = label
        self.source = source
    }
}

/// Reads JSON Lines {"context": ..., "endings": [...], "label": i}; errors name the file and line.
public func readChoiceExamples(_ url: URL, requireLabel: Bool = true) throws -> [ChoiceExample] {
    let data: Data
    do { data = try Data(contentsOf: url) } catch { throw BertError("\(url.path): cannot read (\(error.localizedDescription))") }
    guard let text = String(data: data, encoding: .utf8) else { throw BertError("\(url.path): not valid UTF-8") }
    var result: [ChoiceExample] = []
    for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
        let source = "\(url.path):\(i + 1)"
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw BertError("\(source): not a JSON object") }
        guard let context = o["context"] as? String else { throw BertError("\(source): no \"context\" string") }
        guard let endings = o["endings"] as? [String], endings.count >= 2 else { throw BertError("\(source): \"endings\" must be a list of at least 2 strings") }
        var label: Int? = nil
        if let l = o["label"] as? NSNumber {
            guard l.intValue >= 0 && l.intValue < endings.count, Double(l.intValue) == l.doubleValue else {
                throw BertError("\(source): label \(l) is not an index into the \(endings.count) endings")
            }
            label = l.intValue
        } else if requireLabel {
            throw BertError("\(source): no \"label\"")
        }
        result.append(ChoiceExample(context: context, endings: endings, label: label, source: source))
    }
    return result
}

/// Fine-tunes and runs a BertForMultipleChoice (every question of a batch needs the same number
/// of endings: batches group questions by their count).
public final class ChoiceSolver {
    public let model: BertForMultipleChoice
    public let encoder: SequenceEncoder
    public let options: FineTuneOptions
    public let output: URL

    public init(model: BertForMultipleChoice, tokenizer: BertTokenizer, options: FineTuneOptions, output: URL) {
        self.model = model
        self.encoder = SequenceEncoder(tokenizer: tokenizer, maxLength: options.maxLength)
        self.options = options
        self.output = output
    }

    /// One row per (context, ending) pair, question by question.
    func batch(_ examples: [ChoiceExample]) throws -> EncoderBatch {
        var pairs: [LabeledExample] = []
        for e in examples { for ending in e.endings { pairs.append(LabeledExample(text: e.context, textPair: ending, source: e.source)) } }
        return try encoder.batch(pairs[...])
    }

    public func train(_ trainSet: [ChoiceExample], validation: [ChoiceExample],
                      progress: (String) -> Void = { _ in }, report: (EpochReport) -> Void = { _ in }) throws {
        guard trainSet.allSatisfy({ $0.label != nil }), validation.allSatisfy({ $0.label != nil }) else { throw BertError("every question needs a label") }
        try runFineTuning(parameters: model.parameters, config: model.config, count: trainSet.count, options: options,
                          progress: progress, report: report, save: save,
                          evaluate: validation.isEmpty ? nil : { let m = try self.evaluate(validation); return (m["accuracy"] ?? 0, m) }) { indices, grads, dropout in
            // Questions with different numbers of endings go in separate sub-batches.
            let part = indices.map { trainSet[$0] }
            if part.allSatisfy({ $0.endings.count == part[0].endings.count }) {
                return try model.lossAndGradients(try batch(part), choices: part[0].endings.count, labels: part.map { Int32($0.label!) },
                                                  into: grads, dropout: dropout).loss
            }
            var loss = 0.0
            for (choices, group) in Dictionary(grouping: part, by: { $0.endings.count }).sorted(by: { $0.key < $1.key }) {
                let scale = Double(group.count) / Double(part.count)
                let sub = try ParameterStore(layout: model.parameters.layout)
                let l = try model.lossAndGradients(try batch(group), choices: choices, labels: group.map { Int32($0.label!) }, into: sub, dropout: dropout).loss
                for i in 0..<grads.data.count { grads.data.pointer[i] += Float(scale) * sub.data.pointer[i] }
                loss += scale * l
            }
            return loss
        }
    }

    public func save() throws {
        try model.save(to: output)
        try encoder.tokenizer.write(to: output)
    }

    /// Probabilities over each question's endings.
    public func predict(_ examples: [ChoiceExample]) throws -> [[Double]] {
        var result: [[Double]] = []
        let b = max(1, options.batchSize)
        for first in stride(from: 0, to: examples.count, by: b) {
            let part = Array(examples[first..<min(examples.count, first + b)])
            let scores = try model.scores(try batch(part))
            var at = 0
            for e in part {
                result.append(softmax(scores[at..<at + e.endings.count]))
                at += e.endings.count
            }
        }
        return result
    }

    public func evaluate(_ examples: [ChoiceExample]) throws -> [String: Double] {
        let probabilities = try predict(examples)
        var right = 0, loss = 0.0
        for (p, e) in zip(probabilities, examples) {
            guard let label = e.label else { throw BertError("\(e.source): no label") }
            if p.indices.max(by: { p[$0] < p[$1] }) == label { right += 1 }
            loss -= log(max(p[label], 1e-300))
        }
        return ["accuracy": Double(right) / Double(max(examples.count, 1)), "loss": loss / Double(max(examples.count, 1)),
                "questions": Double(examples.count)]
    }
}
