import BertCompute
import BertTokenizer
import Foundation

/// Settings of a sequence fine-tuning run (the `bert finetune` flags).
public struct FineTuneOptions: Sendable {
    /// Passes over the training set (default 3; 0 saves the newly initialised model).
    public var epochs = 3
    /// Peak learning rate, reached at the end of warm-up (default 2e-5).
    public var learningRate = 2e-5
    /// Examples per optimizer step (default 32).
    public var batchSize = 32
    /// Tokens per example, special tokens included; longer ones are truncated (default 128).
    public var maxLength = 128
    /// Seed of the example order and the dropout masks (default 42).
    public var seed: UInt64 = 42
    /// Share of the steps spent warming up (then linear decay to 0).
    public var warmupRatio = 0.1
    /// AdamW's decoupled weight decay, biases and LayerNorm weights exempt (default 0.01).
    public var weightDecay = 0.01
    /// The gradients' global L2 norm is clipped to this (default 1.0).
    public var maxGradNorm = 1.0
    /// Steps between progress lines (default 20).
    public var logEvery = 20
    /// The job's processes: under N ranks (mpirun) each computes its share of every batch, the
    /// gradients are summed, and rank 0 alone evaluates, reports and saves (default: one process).
    public var communicator: Communicator = SingleProcess()
    /// The defaults above, those of the `bert finetune` flags.
    public init() {}
}

/// One epoch's result.
public struct EpochReport: Sendable {
    /// The epoch's number, from 1.
    public var epoch: Int
    /// Mean training loss over the epoch's batches.
    public var trainLoss: Double
    /// Validation metrics by name (e.g. "accuracy", "loss"); empty without a validation set.
    public var metrics: [String: Double]
    /// Whether the epoch was saved: the first, one that beat the best score, or any without validation.
    public var improved: Bool
}

/// Encodes labeled examples into padded batches for a sequence model.
public struct SequenceEncoder: Sendable {
    /// The tokenizer, truncating to the max length and not padding (`batch` pads).
    public var tokenizer: BertTokenizer

    /// An encoder that truncates each example to `maxLength` tokens (a pair's longer text first).
    public init(tokenizer: BertTokenizer, maxLength: Int) {
        var t = tokenizer
        t.truncation = Truncation(maxLength: maxLength)
        t.padding = nil
        self.tokenizer = t
    }

    /// The examples' token and type ids, right-padded to the longest; pairs when any example has a
    /// second text (a missing one is empty). A tokenizer error names the first example's source.
    public func batch(_ examples: ArraySlice<LabeledExample>) throws -> EncoderBatch {
        let texts = examples.map(\.text)
        let pairs: [String]? = examples.contains { $0.textPair != nil } ? examples.map { $0.textPair ?? "" } : nil
        let encodings: [Encoding]
        do { encodings = try tokenizer.encodeBatch(texts, pairs: pairs) } catch {
            throw BertError.malformedFile(path: examples.first?.source ?? "", reason: "\(error)")
        }
        return EncoderBatch.padded(encodings.map(\.ids), tokenTypeIds: encodings.map(\.typeIds))
    }
}

/// The label names of a classification set, in a fixed order: numerically when every label is an
/// integer, otherwise sorted as strings.
public func labelNames(of examples: [LabeledExample]) -> [String] {
    let names = Set(examples.compactMap(\.label))
    if names.allSatisfy({ Int($0) != nil }) { return names.sorted { Int($0)! < Int($1)! } }
    return names.sorted()
}

/// The fine-tuning loop shared by every task: epochs over a seeded permutation of `count`
/// examples in batches, AdamW (BERT's decay exemptions) with linear warm-up and decay, global-norm
/// clipping, dropout replayable from the seed; after each epoch `evaluate` (when given) and a save
/// of the best epoch (higher score is better; every epoch is saved without evaluation).
///
/// Under N ranks (`options.communicator`) `step` gets this rank's share of each batch, its dropout
/// starting at the share's first example; its mean loss is weighted by its share of the batch's
/// loss terms, `lossTerms` of the share (default: its examples; token tagging counts the labelled
/// tokens), so that the ranks' gradients sum to the batch's mean. Shares are consecutive examples
/// of about equal `exampleCost` (default: equal counts). Rank 0 alone evaluates, reports and saves.
/// `dataIdentity` (a digest of the training data) is compared across the ranks with the settings.
public func runFineTuning(
    parameters: ParameterStore, config: BertConfig, count: Int, options: FineTuneOptions,
    progress: (String) -> Void, report: (EpochReport) -> Void, save: () throws -> Void,
    evaluate: (() throws -> (score: Double, metrics: [String: Double]))?,
    lossTerms: ((ArraySlice<Int>) throws -> Int)? = nil,
    exampleCost: ((Int) -> Int)? = nil, dataIdentity: UInt64 = 0,
    step lossAndGradients: (ArraySlice<Int>, ParameterStore, Dropout) throws -> Double
) throws {
    let communicator = options.communicator
    let leader = communicator.isLeader, ranks = communicator.size
    guard count > 0 else { throw BertError.invalidInput("the training set is empty") }
    // Zero epochs: write the newly initialised model (to start another trainer from the same weights).
    if options.epochs == 0 { return leader ? try save() : () }
    guard options.batchSize >= 1, options.epochs >= 0 else {
        throw BertError.invalidInput("the batch size must be at least 1 and the epochs 0 or more")
    }
    // A batch larger than the data is the whole data (and keeps `first + b` from overflowing).
    let b = min(options.batchSize, count)
    let stepsPerEpoch = (count + b - 1) / b
    let (total, overflow) = stepsPerEpoch.multipliedReportingOverflow(by: options.epochs)
    guard !overflow, total <= Int(Int32.max) else {
        throw BertError.invalidInput(
            "\(options.epochs) epochs of \(stepsPerEpoch) steps are more than \(Int32.max) steps in all")
    }
    let schedule = LinearWarmupSchedule(
        warmupSteps: Int((Double(total) * options.warmupRatio).rounded()), totalSteps: total)
    let trainer = try TrainingStep(
        parameters: parameters, config: config,
        optimizer: AdamW(layout: parameters.layout, weightDecay: options.weightDecay),
        schedule: schedule, peakLearningRate: options.learningRate,
        maxGradNorm: options.maxGradNorm, seed: options.seed, communicator: communicator)
    try communicator.checkSame(
        "\(count) examples, \(options.epochs) epochs, batch \(b), lr \(options.learningRate), seed \(options.seed), "
            + "max length \(options.maxLength), warm-up \(options.warmupRatio), decay \(options.weightDecay), "
            + "clip \(options.maxGradNorm), \(parameters.layout.totalCount) parameters, data \(dataIdentity)",
        what: "the fine-tuning settings and data")
    // Every rank starts from rank 0's model (the new head's initialisation included).
    try trainer.broadcastState()
    var best = -Double.infinity
    var step = 0
    let start = Date()
    for epoch in 0..<options.epochs {
        let order = seededPermutation(count, seed: Seeds.epochOrder(options.seed, epoch: epoch))
        var epochLoss = 0.0, batches = 0
        for first in stride(from: 0, to: order.count, by: b) {
            let batch = order[first..<min(order.count, first + b)]
            // Consecutive examples of about equal cost: the slowest rank sets the pace.
            let share =
                ranks > 1 && exampleCost != nil
                ? SingleProcess.share(ofCosts: batch.map { exampleCost!($0) }, rank: communicator.rank, size: ranks)
                : communicator.share(of: batch.count)
            let mine = batch[(batch.startIndex + share.lowerBound)..<(batch.startIndex + share.upperBound)]
            // This share's weight: its loss terms over the batch's (1 alone).
            var weight = 1.0
            if ranks > 1 {
                var terms = [Double(try lossTerms?(mine) ?? mine.count)]
                let own = terms[0]
                try communicator.sum(&terms)
                weight = terms[0] > 0 ? own / terms[0] : 0
            }
            let (_, losses) = try trainer.run(step: step, scale: Float(weight)) { _, grads, dropout in
                // An empty share (a last batch smaller than the ranks) adds nothing.
                if mine.isEmpty { return 0 }
                return try lossAndGradients(mine, grads, dropout.startingAt(sequence: share.lowerBound)) * weight
            }
            epochLoss += losses[0]
            step += 1
            batches += 1
            if leader && step % max(1, options.logEvery) == 0 {
                let elapsed = Date().timeIntervalSince(start)
                progress(
                    String(
                        format: "epoch %d  step %d/%d  loss %.4f  %.1f examples/s", epoch + 1, step, total,
                        epochLoss / Double(batches), Double(min(step * b, count * options.epochs)) / max(elapsed, 1e-9))
                )
            }
        }
        // The others go on to the next epoch (its first sum waits for rank 0).
        guard leader else { continue }
        var metrics: [String: Double] = [:]
        var improved = true
        if let evaluate {
            let (score, m) = try evaluate()
            metrics = m
            // The first epoch is always saved, so that a run whose score is undefined (Pearson on
            // constant labels is NaN) still leaves a model; later ones when they score higher.
            improved = epoch == 0 || score > best
            if improved && !score.isNaN { best = max(best, score) }
        }
        if improved { try save() }
        report(
            EpochReport(
                epoch: epoch + 1, trainLoss: epochLoss / Double(max(batches, 1)), metrics: metrics, improved: improved))
    }
}

/// Writes a fine-tuned model, its tokenizer and what `also` adds (QA settings) as one folder,
/// replacing the last save whole: every task runner saves through here.
func saveFineTuned(
    _ model: some BertHead, tokenizer: BertTokenizer, to output: OutputFolder?, also: (URL) throws -> Void = { _ in }
) throws {
    guard let output else { throw BertError.invalidInput("no output folder to save to") }
    try output.replace { folder in
        try model.save(to: folder)
        try tokenizer.write(to: folder)
        try also(folder)
    }
}

/// Fine-tunes a BertForSequenceClassification on labeled examples: AdamW with warm-up and linear
/// decay, clipping, dropout; evaluates on the validation set after each epoch and saves the best
/// model (by accuracy, or Pearson for regression) to the output folder as a Hugging Face folder.
public final class SequenceFineTuner {
    /// The sequence classification or regression model trained and run.
    public let model: BertForSequenceClassification
    /// Encodes examples, truncated to `options.maxLength` tokens.
    public let encoder: SequenceEncoder
    /// The training settings; `batchSize` also sets the prediction batch.
    public let options: FineTuneOptions
    /// Where `save` writes (nil: a model opened for prediction only).
    public let output: OutputFolder?

    /// A fine-tuner for `model` that encodes with `tokenizer` (truncating to `options.maxLength`)
    /// and saves to `output`.
    public init(
        model: BertForSequenceClassification, tokenizer: BertTokenizer, options: FineTuneOptions,
        output: OutputFolder? = nil
    ) {
        self.model = model
        self.encoder = SequenceEncoder(tokenizer: tokenizer, maxLength: options.maxLength)
        self.options = options
        self.output = output
    }

    /// Label ids (classification) or numeric targets (regression) of examples, with errors naming the row.
    func targets(_ examples: ArraySlice<LabeledExample>) throws -> ([Int32]?, [Float]?) {
        switch model.task {
        case .classification:
            let index = Dictionary(
                uniqueKeysWithValues: model.labels.enumerated().map { ($0.element, Int32($0.offset)) })
            return (
                try examples.map { e in
                    guard let l = e.label, let id = index[l] else {
                        throw BertError.malformedFile(
                            path: e.source,
                            reason: "label '\(e.label ?? "")' is not one of the model's labels \(model.labels)")
                    }
                    return id
                }, nil
            )
        case .regression:
            return (
                nil,
                try examples.map { e in
                    guard let l = e.label, let v = Float(l.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                        throw BertError.malformedFile(
                            path: e.source, reason: "label '\(e.label ?? "")' is not a number")
                    }
                    return v
                }
            )
        }
    }

    /// Trains for `options.epochs` epochs; `report` is called with progress lines and epoch results.
    public func train(
        _ trainSet: [LabeledExample], validation: [LabeledExample],
        progress: (String) -> Void = { _ in }, report: (EpochReport) -> Void = { _ in }
    ) throws {
        guard !trainSet.isEmpty else { throw BertError.invalidInput("the training set is empty") }
        _ = try targets(trainSet[...])
        _ = try targets(validation[...])
        let key = model.task == .classification ? "accuracy" : "pearson"
        try runFineTuning(
            parameters: model.parameters, config: model.config, count: trainSet.count, options: options,
            progress: progress, report: report, save: save,
            evaluate: validation.isEmpty
                ? nil
                : {
                    let m = try self.evaluate(validation); return (m[key] ?? -.infinity, m)
                },
            exampleCost: { trainSet[$0].text.utf8.count + (trainSet[$0].textPair?.utf8.count ?? 0) },
            dataIdentity: Fingerprint.of(trainSet.flatMap { [$0.text, $0.textPair ?? "", $0.label ?? ""] })
        ) { indices, grads, dropout in
            let part = indices.map { trainSet[$0] }
            let (labels, values) = try targets(part[...])
            return try model.lossAndGradients(
                try encoder.batch(part[...]), classLabels: labels, targets: values,
                into: grads, dropout: dropout
            ).loss
        }
    }

    /// Writes the model and its tokenizer as one folder (replacing the last save whole).
    public func save() throws { try saveFineTuned(model, tokenizer: encoder.tokenizer, to: output) }

    /// Predictions for examples: the logits of each, in order (batched, dropout off).
    public func logits(_ examples: [LabeledExample]) throws -> [[Float]] {
        var result: [[Float]] = []
        let b = min(max(1, options.batchSize), 1 << 20)  // bounded: `first + b` cannot overflow
        for first in stride(from: 0, to: examples.count, by: b) {
            let part = examples[first..<min(examples.count, first + b)]
            let flat = try model.logits(try encoder.batch(part))
            let n = model.numLabels
            for i in 0..<part.count { result.append(Array(flat[i * n..<(i + 1) * n])) }
        }
        return result
    }

    /// The task's metrics on labeled examples: accuracy, F1 (binary: of the second label; else
    /// macro) and Matthews correlation, or Pearson and Spearman for regression; plus the loss.
    public func evaluate(_ examples: [LabeledExample]) throws -> [String: Double] {
        let out = try logits(examples)
        switch model.task {
        case .classification:
            let (labels, _) = try targets(examples[...])
            let gold = labels!.map(Int.init)
            let predicted = out.map { row in row.indices.max { row[$0] < row[$1] }! }
            let loss = zip(out, gold).reduce(0.0) { $0 + crossEntropy($1.0, label: $1.1) }
            let n = model.numLabels
            return [
                "accuracy": Metrics.accuracy(predicted, gold),
                "f1": n == 2 ? Metrics.f1(predicted, gold, positive: 1) : Metrics.macroF1(predicted, gold, classes: n),
                "matthews": Metrics.matthews(predicted, gold, classes: n),
                "loss": loss / Double(max(gold.count, 1)), "examples": Double(gold.count),
            ]
        case .regression:
            let (_, values) = try targets(examples[...])
            let gold = values!.map(Double.init), predicted = out.map { Double($0[0]) }
            let mse =
                zip(predicted, gold).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(max(gold.count, 1))
            return [
                "pearson": Metrics.pearson(predicted, gold), "spearman": Metrics.spearman(predicted, gold),
                "mse": mse, "examples": Double(gold.count),
            ]
        }
    }
}
