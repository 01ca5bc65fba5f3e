import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// Pretraining data streamed to shards on disk and read back, and gradient accumulation.
@Suite(.serialized, .enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the corpus"))
struct PretrainingShardsTests {
    struct Setting {
        var tokenizer: BertTokenizer
        var corpus: URL
        var config: BertConfig
        var root: URL
    }

    func setting() throws -> Setting {
        let text = try String(
            contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
        let slice = String(text.prefix(300_000))
        var learner = WordPieceLearner(size: 1500)
        learner.add(text: slice)
        let tokenizer = try BertTokenizer(vocabulary: learner.learn())
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let corpus = root.appendingPathComponent("corpus.txt")
        try slice.write(to: corpus, atomically: true, encoding: .utf8)
        var config = try BertConfig.preset("tiny")
        config.hiddenSize = 32
        config.numAttentionHeads = 2
        config.intermediateSize = 64
        config.vocabSize = tokenizer.vocabulary.count
        return Setting(tokenizer: tokenizer, corpus: corpus, config: config, root: root)
    }

    func shardOptions(seed: UInt64 = 7, chunk: Int = 4096) -> ShardOptions {
        var o = ShardOptions()
        o.data.maxSeqLength = 32
        o.data.maxPredictionsPerSeq = 5
        o.seed = seed
        o.shardCount = 4
        o.chunkDocuments = chunk
        o.splitSentences = true
        return o
    }

    func files(_ folder: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            result[name] = try Data(contentsOf: folder.appendingPathComponent(name))
        }
        return result
    }

    @Test func streamedShardsHoldTheInMemoryInstancesAndAreDeterministic() throws {
        let s = try setting()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let a = s.root.appendingPathComponent("a"), b = s.root.appendingPathComponent("b"),
            c = s.root.appendingPathComponent("c")
        let set = try preparePretrainingShards(
            files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(), folder: a)
        try preparePretrainingShards(files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(), folder: b)
        try preparePretrainingShards(
            files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(seed: 8), folder: c)
        let filesA = try files(a)
        #expect(filesA == (try files(b)), "the same seed must give the same shards")
        #expect(filesA["shard-00000.bin"] != (try files(c))["shard-00000.bin"])
        #expect(
            Set(filesA.keys) == [
                "manifest.json", "heldout.bin", "shard-00000.bin", "shard-00001.bin", "shard-00002.bin",
                "shard-00003.bin",
            ])

        // One chunk: exactly the instances the in-memory path makes from the same documents.
        let documents = try readDocuments(files: [s.corpus], tokenizer: s.tokenizer, splitSentences: true)
        #expect(set.documents == documents.count)
        let builder = try PretrainingDataBuilder(tokenizer: s.tokenizer, options: shardOptions().data)
        // Held out: the head (sentences up to 4 × 32 tokens) of every 100th document, at most 64,
        // the rest of each such document trained on; heads past a tenth of the tokens go back to
        // training after the other documents.
        var train: [[[Int32]]] = [], heads: [[[Int32]]] = []
        for (d, document) in documents.enumerated() {
            guard d % 100 == 0 && heads.count < 64 else {
                train.append(document)
                continue
            }
            var cut = 0, tokens = 0
            while cut < document.count && (cut == 0 || tokens + document[cut].count <= 128) {
                tokens += document[cut].count
                cut += 1
            }
            heads.append(Array(document[..<cut]))
            if cut < document.count { train.append(Array(document[cut...])) }
        }
        func tokenCount(_ docs: [[[Int32]]]) -> Int { docs.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } } }
        let corpusTokens = tokenCount(documents)
        var returned: [[[Int32]]] = []
        while !heads.isEmpty && Double(tokenCount(heads)) > 0.1 * Double(corpusTokens) {
            returned.insert(heads.removeLast(), at: 0)
        }
        train += returned
        #expect(heads.count >= 2 && set.heldOutCount > 0)
        #expect(Double(tokenCount(heads)) <= 0.1 * Double(corpusTokens))
        var rng = SeededRandom(seed: 7 &+ 0xC4A2)
        var expected: [PretrainingInstance] = []
        for d in train.indices { expected += builder.instances(document: d, of: train, rng: &rng) }
        #expect(set.count == expected.count)

        // An epoch visits every instance once, in an order that changes with the epoch.
        var seen = [Bool](repeating: false, count: set.count)
        var read: [PretrainingInstance] = [], order0: [Int] = [], order1: [Int] = []
        for p in 0..<set.count {
            let (index, instance) = try set.instance(epoch: 0, position: p)
            #expect(!seen[index])
            seen[index] = true
            order0.append(index)
            read.append(instance)
            order1.append(try set.instance(epoch: 1, position: p).index)
        }
        #expect(seen.allSatisfy { $0 })
        #expect(order0 != order1)
        func key(_ i: PretrainingInstance) -> String { "\(i.tokens)|\(i.segmentIds)|\(i.isRandomNext)" }
        #expect(read.map(key).sorted() == expected.map(key).sorted())
        // Shards are mixtures: consecutive positions do not come from consecutive documents.
        #expect(zip(order0, order0.dropFirst()).filter { $1 == $0 + 1 }.count < set.count / 10)

        let evalInstances = try set.heldOut(limit: 1000)
        #expect(!evalInstances.isEmpty)
        #expect(
            evalInstances.allSatisfy {
                $0.tokens.first == builder.cls && $0.tokens.last == builder.sep && $0.tokens.count <= 32
            })
    }

    @Test func smallChunksBoundMemoryAndStillFollowTheRules() throws {
        let s = try setting()
        defer { try? FileManager.default.removeItem(at: s.root) }
        // Documents of 30 lines each (the test corpus's own documents are mostly single
        // paragraphs, which are always NotNext by the reference rule).
        let lines = try String(contentsOf: s.corpus, encoding: .utf8).split(separator: "\n").filter {
            !$0.allSatisfy(\.isWhitespace)
        }
        let long = s.root.appendingPathComponent("long.txt")
        try stride(from: 0, to: lines.count, by: 30).map {
            lines[$0..<min(lines.count, $0 + 30)].joined(separator: "\n")
        }
        .joined(separator: "\n\n").write(to: long, atomically: true, encoding: .utf8)
        var options = shardOptions(chunk: 25)
        options.data.maxSeqLength = 128
        let set = try preparePretrainingShards(
            files: [long], tokenizer: s.tokenizer, options: options,
            folder: s.root.appendingPathComponent("d"))
        #expect(set.documents > 100)
        let builder = try PretrainingDataBuilder(tokenizer: s.tokenizer, options: shardOptions().data)
        var notNext = 0
        for p in 0..<set.count {
            let i = try set.instance(epoch: 0, position: p).instance
            let a = i.segmentIds.firstIndex(of: 1)!
            #expect(i.tokens.first == builder.cls && i.tokens[a - 1] == builder.sep && i.tokens.last == builder.sep)
            #expect(i.tokens.count <= 128 && i.tokens.count == i.segmentIds.count)
            #expect(i.segmentIds[a...].allSatisfy { $0 == 1 })
            if i.isRandomNext { notNext += 1 }
        }
        let share = Double(notNext) / Double(set.count)
        #expect(share > 0.4 && share < 0.7, "NotNext share \(share)")
    }

    @Test func damagedShardsGiveClearErrors() throws {
        let s = try setting()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let folder = s.root.appendingPathComponent("e")
        let set = try preparePretrainingShards(
            files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(), folder: folder)
        // A vocabulary of another size.
        var learner = WordPieceLearner(size: 900)
        learner.add(text: "some other text entirely, with few words")
        let other = try BertTokenizer(vocabulary: learner.learn())
        var o = PretrainingRunOptions()
        o.data = shardOptions().data
        #expect(throws: BertError.self) {
            try PretrainingRun(
                model: try BertForPreTraining(config: s.config), tokenizer: other, shards: set, options: o,
                output: s.root.appendingPathComponent("out"))
        }
        // A truncated shard: reading it fails with the file named, no crash.
        let shard = folder.appendingPathComponent("shard-00002.bin")
        let bytes = try Data(contentsOf: shard)
        try bytes.prefix(bytes.count - 3).write(to: shard)
        let reopened = try PretrainingShardSet(folder: folder)
        do {
            for p in 0..<reopened.count { _ = try reopened.instance(epoch: 0, position: p) }
            Issue.record("a truncated shard must not read")
        } catch let e as BertError {
            #expect(e.message.contains("shard-00002.bin"), "\(e.message)")
        }
        // No manifest: the preparation did not finish.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("manifest.json"))
        do {
            _ = try PretrainingShardSet(folder: folder)
            Issue.record("a folder without manifest.json must not open")
        } catch let e as BertError {
            #expect(e.message.contains("manifest.json"), "\(e.message)")
        }
    }

    func runOptions() -> PretrainingRunOptions {
        var o = PretrainingRunOptions()
        o.steps = 8
        o.batchSize = 4
        o.accumulationSteps = 2
        o.learningRate = 1e-3
        o.warmupSteps = 2
        o.checkpointEvery = 3
        o.evalEvery = 4
        o.logEvery = 1
        o.seed = 7
        o.data = shardOptions().data
        return o
    }

    @Test func aRunOnShardsResumesExactly() throws {
        let s = try setting()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let set = try preparePretrainingShards(
            files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(),
            folder: s.root.appendingPathComponent("data"))
        let whole = try BertForPreTraining(config: s.config)
        whole.initializeWeights(seed: 1)
        let a = s.root.appendingPathComponent("a")
        try PretrainingRun(model: whole, tokenizer: s.tokenizer, shards: set, options: runOptions(), output: a).run(
            resume: false
        ) { _ in }

        let first = try BertForPreTraining(config: s.config)
        first.initializeWeights(seed: 1)
        let b = s.root.appendingPathComponent("b")
        let stop = Cancellation()
        #expect(throws: BertError.self) {
            try PretrainingRun(model: first, tokenizer: s.tokenizer, shards: set, options: runOptions(), output: b)
                .run(resume: false, cancellation: stop) { p in if p.step == 5 { stop.cancel() } }
        }
        let second = try BertForPreTraining(config: s.config)
        try PretrainingRun(
            model: second, tokenizer: s.tokenizer,
            shards: try PretrainingShardSet(folder: s.root.appendingPathComponent("data")),
            options: runOptions(), output: b
        ).run(resume: true) { _ in }
        let curveA = try String(contentsOf: a.appendingPathComponent("training_curve.csv"), encoding: .utf8)
        let curveB = try String(contentsOf: b.appendingPathComponent("training_curve.csv"), encoding: .utf8)
        #expect(curveA.split(separator: "\n").count == 9)
        #expect(curveA == curveB)
        #expect(whole.parameters.data.toArray() == second.parameters.data.toArray())

        // Resuming with another accumulation would change the run: refused.
        var other = runOptions()
        other.accumulationSteps = 1
        #expect(throws: BertError.self) {
            try PretrainingRun(
                model: try BertForPreTraining(config: s.config), tokenizer: s.tokenizer, shards: set,
                options: other, output: b
            ).run(resume: true) { _ in }
        }
    }

    /// One step with accumulation 2 is the AdamW update with the average of the two micro-batches'
    /// gradients (dropout off, so the gradients can be recomputed outside the run).
    @Test func accumulationAveragesTheMicroBatchGradients() throws {
        let s = try setting()
        defer { try? FileManager.default.removeItem(at: s.root) }
        var config = s.config
        config.hiddenDropoutProb = 0
        config.attentionProbsDropoutProb = 0
        let set = try preparePretrainingShards(
            files: [s.corpus], tokenizer: s.tokenizer, options: shardOptions(),
            folder: s.root.appendingPathComponent("data"))
        var o = runOptions()
        o.steps = 1
        o.warmupSteps = 0
        o.maxGradNorm = 1e30
        let trained = try BertForPreTraining(config: config)
        trained.initializeWeights(seed: 3)
        let run = try PretrainingRun(
            model: trained, tokenizer: s.tokenizer, shards: set, options: o,
            output: s.root.appendingPathComponent("out"))
        let mb0 = try run.microBatch(at: 0), mb1 = try run.microBatch(at: 1)
        #expect(mb0.inputs.inputIds != mb1.inputs.inputIds)
        var losses: [Double] = []
        try run.run(resume: false) { p in losses.append(p.loss.total) }

        let manual = try BertForPreTraining(config: config)
        manual.initializeWeights(seed: 3)
        let grads = try manual.makeGradients()
        let l0 = try manual.lossAndGradients(mb0, into: grads), l1 = try manual.lossAndGradients(mb1, into: grads)
        for i in 0..<grads.data.count { grads.data.pointer[i] *= 0.5 }
        let optimizer = AdamW(layout: manual.parameters.layout)
        optimizer.update(
            manual.parameters, gradients: grads,
            lr: o.learningRate * LinearWarmupSchedule(warmupSteps: 0, totalSteps: 1).multiplier(at: 0))
        #expect(trained.parameters.data.toArray() == manual.parameters.data.toArray())
        #expect(abs(losses[0] - (l0.total + l1.total) / 2) < 1e-9)
        // The sum instead of the average would give another update (Adam's epsilon and weight decay see the scale).
        let summed = try BertForPreTraining(config: config)
        summed.initializeWeights(seed: 3)
        let g2 = try summed.makeGradients()
        _ = try summed.lossAndGradients(mb0, into: g2)
        _ = try summed.lossAndGradients(mb1, into: g2)
        AdamW(layout: summed.parameters.layout).update(summed.parameters, gradients: g2, lr: o.learningRate)
        #expect(trained.parameters.data.toArray() != summed.parameters.data.toArray())
    }
}
