import BertCompute
import BertTokenizer
import Foundation

/// A multiple-choice question: a context, its endings and the right ending's index.
public struct ChoiceExample: Sendable, Equatable {
    /// The text every ending continues (each pair's first text).
    public var context: String
    /// The candidate endings (each pair's second text).
    public var endings: [String]
    /// Index of the right ending in `endings`; nil when unlabeled.
    public var label: Int?
    /// Where the question came from ("file:line"), named in errors; empty when unknown.
    public var source: String
    /// A question from its fields; unlabeled and without a source by default.
    public init(context: String, endings: [String], label: Int? = nil, source: String = "") {
        self.context = context
        self.endings = endings
        self.label = label
        self.source = source
    }
}

/// Reads JSON Lines {"context": ..., "endings": [...], "label": i}; errors name the file and line.
public func readChoiceExamples(_ url: URL, requireLabel: Bool = true) throws -> [ChoiceExample] {
    var result: [ChoiceExample] = []
    for (line, o) in try readJSONLines(url) {
        let source = "\(url.path):\(line)"
        guard let context = o["context"] as? String else {
            throw BertError.malformedFile(path: source, reason: "no \"context\" string")
        }
        guard let endings = o["endings"] as? [String], endings.count >= 2 else {
            throw BertError.malformedFile(path: source, reason: "\"endings\" must be a list of at least 2 strings")
        }
        var label: Int? = nil
        if let l = o["label"] as? NSNumber {
            guard l.intValue >= 0 && l.intValue < endings.count, Double(l.intValue) == l.doubleValue else {
                throw BertError.malformedFile(
                    path: source, reason: "label \(l) is not an index into the \(endings.count) endings")
            }
            label = l.intValue
        } else if requireLabel {
            throw BertError.malformedFile(path: source, reason: "no \"label\"")
        }
        result.append(ChoiceExample(context: context, endings: endings, label: label, source: source))
    }
    return result
}

/// Fine-tunes and runs a BertForMultipleChoice (every question of a batch needs the same number
/// of endings: batches group questions by their count).
public final class ChoiceSolver {
    /// The multiple-choice model trained and run.
    public let model: BertForMultipleChoice
    /// Encodes each (context, ending) pair, truncated to `options.maxLength` tokens.
    public let encoder: SequenceEncoder
    /// The training settings; `batchSize` counts questions (each ending is a row), also in prediction.
    public let options: FineTuneOptions
    /// Where `save` writes (nil: a model opened for prediction only).
    public let output: OutputFolder?

    /// A solver for `model` that encodes with `tokenizer` (truncating to `options.maxLength`) and
    /// saves to `output`.
    public init(
        model: BertForMultipleChoice, tokenizer: BertTokenizer, options: FineTuneOptions, output: OutputFolder? = nil
    ) {
        self.model = model
        self.encoder = SequenceEncoder(tokenizer: tokenizer, maxLength: options.maxLength)
        self.options = options
        self.output = output
    }

    /// One row per (context, ending) pair, question by question.
    func batch(_ examples: [ChoiceExample]) throws -> EncoderBatch {
        var pairs: [LabeledExample] = []
        for e in examples {
            for ending in e.endings {
                pairs.append(LabeledExample(text: e.context, textPair: ending, source: e.source))
            }
        }
        return try encoder.batch(pairs[...])
    }

    /// Trains for `options.epochs` epochs (every question needs a label), evaluating on `validation`
    /// after each and saving the best epoch by accuracy; `progress` gets log lines, `report` epoch results.
    public func train(
        _ trainSet: [ChoiceExample], validation: [ChoiceExample],
        progress: (String) -> Void = { _ in }, report: (EpochReport) -> Void = { _ in }
    ) throws {
        guard trainSet.allSatisfy({ $0.label != nil }), validation.allSatisfy({ $0.label != nil }) else {
            throw BertError.invalidInput("every question needs a label")
        }
        try runFineTuning(
            parameters: model.parameters, config: model.config, count: trainSet.count, options: options,
            progress: progress, report: report, save: save,
            evaluate: validation.isEmpty
                ? nil
                : {
                    let m = try self.evaluate(validation); return (m["accuracy"] ?? 0, m)
                },
            exampleCost: { i in
                trainSet[i].endings.reduce(0) { $0 + $1.utf8.count + trainSet[i].context.utf8.count }
            },
            dataIdentity: Fingerprint.of(trainSet.flatMap { [$0.context, "\($0.label ?? -1)"] + $0.endings })
        ) { indices, grads, dropout in
            // Questions with different numbers of endings go in separate sub-batches.
            let part = indices.map { trainSet[$0] }
            // Each ending's masks from its question's place in the batch (dropout.firstSequence
            // counts questions) and its own: the same in any sub-batch and on any rank.
            func rows(_ questions: [Int]) -> Dropout {
                var d = dropout
                d.sequenceNumbers = questions.flatMap { q in
                    (0..<part[q].endings.count).map { (dropout.firstSequence + q) * 64 + $0 }
                }
                return d
            }
            if part.allSatisfy({ $0.endings.count == part[0].endings.count }) {
                return try model.lossAndGradients(
                    try batch(part), choices: part[0].endings.count, labels: part.map { Int32($0.label!) },
                    into: grads, dropout: rows(Array(part.indices))
                ).loss
            }
            var loss = 0.0
            let groups = Dictionary(grouping: part.indices, by: { part[$0].endings.count })
            for (choices, questions) in groups.sorted(by: { $0.key < $1.key }) {
                let group = questions.map { part[$0] }
                let scale = Double(group.count) / Double(part.count)
                let sub = try ParameterStore(layout: model.parameters.layout)
                let l = try model.lossAndGradients(
                    try batch(group), choices: choices, labels: group.map { Int32($0.label!) }, into: sub,
                    dropout: rows(questions)
                ).loss
                let (g, d) = (grads.data, sub.data)
                for i in 0..<g.count { g.pointer[i] += Float(scale) * d.pointer[i] }
                loss += scale * l
            }
            return loss
        }
    }

    /// Writes the model and its tokenizer as one folder (replacing the last save whole).
    public func save() throws { try saveFineTuned(model, tokenizer: encoder.tokenizer, to: output) }

    /// Probabilities over each question's endings.
    public func predict(_ examples: [ChoiceExample]) throws -> [[Double]] {
        var result: [[Double]] = []
        let b = min(max(1, options.batchSize), 1 << 20)  // bounded: `first + b` cannot overflow
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

    /// Accuracy and mean cross-entropy of the predictions on labeled questions (keys "accuracy",
    /// "loss", "questions").
    public func evaluate(_ examples: [ChoiceExample]) throws -> [String: Double] {
        let probabilities = try predict(examples)
        var right = 0, loss = 0.0
        for (p, e) in zip(probabilities, examples) {
            guard let label = e.label else { throw BertError.malformedFile(path: e.source, reason: "no label") }
            if p.indices.max(by: { p[$0] < p[$1] }) == label { right += 1 }
            loss -= log(max(p[label], 1e-300))
        }
        return [
            "accuracy": Double(right) / Double(max(examples.count, 1)), "loss": loss / Double(max(examples.count, 1)),
            "questions": Double(examples.count),
        ]
    }
}
