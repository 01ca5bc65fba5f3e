import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// The trainer: an interrupted and resumed run reproduces the uninterrupted run's losses exactly,
/// and its output folder loads back.
@Suite(.serialized, .enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the corpus"))
struct PretrainingRunTests {
    func setting() throws -> (BertTokenizer, [[[Int32]]], BertConfig) {
        let text = try String(
            contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
        let slice = String(text.prefix(400_000))
        var learner = WordPieceLearner(size: 1500)
        learner.add(text: slice)
        let tokenizer = try BertTokenizer(vocabulary: learner.learn())
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("run-corpus-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try slice.write(to: url, atomically: true, encoding: .utf8)
        let documents = try readDocuments(files: [url], tokenizer: tokenizer, splitSentences: true)
        var config = try BertConfig.preset("tiny")
        config.hiddenSize = 32
        config.numAttentionHeads = 2
        config.intermediateSize = 64
        config.vocabSize = tokenizer.vocabulary.count
        return (tokenizer, documents, config)
    }

    func options() -> PretrainingRunOptions {
        var o = PretrainingRunOptions()
        o.steps = 12
        o.batchSize = 4
        o.learningRate = 1e-3
        o.warmupSteps = 3
        o.checkpointEvery = 5
        o.evalEvery = 6
        o.logEvery = 1
        o.data.maxSeqLength = 32
        o.data.maxPredictionsPerSeq = 5
        o.dynamicMasking = true
        return o
    }

    func curve(_ folder: URL) throws -> [String] {
        try String(contentsOf: folder.appendingPathComponent("training_curve.csv"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
    }

    @Test func resumingGivesTheUninterruptedLosses() throws {
        let (tokenizer, documents, config) = try setting()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }

        let whole = try BertForPreTraining(config: config)
        whole.initializeWeights(seed: 1)
        let a = root.appendingPathComponent("a")
        try PretrainingRun(model: whole, tokenizer: tokenizer, documents: documents, options: options(), output: a)
            .run(resume: false) { _ in }

        let first = try BertForPreTraining(config: config)
        first.initializeWeights(seed: 1)
        let b = root.appendingPathComponent("b")
        let interrupted = try PretrainingRun(
            model: first, tokenizer: tokenizer, documents: documents, options: options(), output: b)
        let stop = Cancellation()
        #expect(throws: BertError.interrupted(step: 7, saved: "checkpoint and model saved")) {
            try interrupted.run(resume: false, cancellation: stop) { p in if p.step == 7 { stop.cancel() } }
        }
        #expect(
            try String(contentsOf: b.appendingPathComponent("checkpoints/latest"), encoding: .utf8) == "step-00000007")
        let second = try BertForPreTraining(config: config)
        second.initializeWeights(seed: 99)  // overwritten by the checkpoint
        try PretrainingRun(model: second, tokenizer: tokenizer, documents: documents, options: options(), output: b)
            .run(resume: true) { _ in }

        let curveA = try curve(a), curveB = try curve(b)
        #expect(curveA.count == 13)
        #expect(curveA == curveB, "resumed losses differ")
        #expect(whole.parameters.data.toArray() == second.parameters.data.toArray())
        // The output folder loads back, with the same weights.
        let loaded = try BertForPreTraining(folder: a)
        #expect(loaded.parameters.data.toArray() == whole.parameters.data.toArray())
        #expect(FileManager.default.fileExists(atPath: a.appendingPathComponent("training_curve.svg").path))
        let leftovers = try FileManager.default.contentsOfDirectory(
            atPath: b.appendingPathComponent("checkpoints").path)
        #expect(!leftovers.contains { $0.contains(".tmp-") })
    }

    @Test func aDivergingRunStopsWithAClearMessage() throws {
        let (tokenizer, documents, config) = try setting()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try BertForPreTraining(config: config)
        model.initializeWeights(seed: 1)
        var o = options()
        o.learningRate = 1e30
        o.maxGradNorm = 1e30
        do {
            try PretrainingRun(model: model, tokenizer: tokenizer, documents: documents, options: o, output: root).run(
                resume: false
            ) { _ in }
            Issue.record("a learning rate of 1e30 should make the loss non-finite")
        } catch let e as BertError {
            #expect(e.message.contains("loss is") && e.message.contains("checkpoint"), "\(e.message)")
            guard case .diverged(let step, let loss, _) = e else {
                Issue.record("expected .diverged, got \(e)")
                return
            }
            #expect(step >= 1 && !loss.isFinite)
        }
    }
}
