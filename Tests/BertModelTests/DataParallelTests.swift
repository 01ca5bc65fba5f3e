import Bert
import BertCompute
import Foundation
import Testing

// Data-parallel training's contract, in one process: a micro-batch split into ranks' shares (each
// with its dropout starting at its first row, each normalised by the whole micro-batch) gives the
// micro-batch's gradient; the bucketed gradient sum gives what one sum after the backward gives.
// The tests under mpirun itself are in MPIJobTests.swift.

/// A small random pretraining batch: sequences of different lengths, some positions masked.
struct RandomPretrainingRows {
    var tokens: [[Int32]] = []
    var types: [[Int32]] = []
    var labels: [[Int32]] = []
    var nsp: [Int32] = []

    init(rows: Int, vocab: Int, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for r in 0..<rows {
            let n = 5 + Int(rng.next() % 12)
            tokens.append((0..<n).map { _ in Int32(1 + rng.next() % UInt64(vocab - 1)) })
            types.append((0..<n).map { $0 < n / 2 ? 0 : 1 })
            // Row 3 has no masked position: a share may hold none.
            labels.append((0..<n).map { _ in r != 3 && rng.next() % 4 == 0 ? Int32(rng.next() % UInt64(vocab)) : -100 })
            nsp.append(Int32(rng.next() % 2))
        }
    }

    /// Rows `rows` as a padded batch (labels padded with −100).
    func batch(_ rows: Range<Int>) -> PretrainingBatch {
        let part = Array(rows)
        let inputs = EncoderBatch.padded(part.map { tokens[$0] }, tokenTypeIds: part.map { types[$0] })
        let s = inputs.sequenceLength
        var mlm = [Int32](repeating: -100, count: part.count * s)
        for (i, r) in part.enumerated() { mlm.replaceSubrange(i * s..<(i * s + labels[r].count), with: labels[r]) }
        return PretrainingBatch(inputs: inputs, mlmLabels: mlm, nspLabels: part.map { nsp[$0] })
    }

    var maskedCount: Int { labels.reduce(0) { $0 + $1.count { $0 != -100 } } }
}

/// A 3-layer BERT of width 32 over 97 tokens, with dropout.
func smallDropoutConfig() throws -> BertConfig {
    var config = try BertConfig.preset("tiny")
    config.hiddenSize = 32
    config.numAttentionHeads = 2
    config.intermediateSize = 48
    config.numHiddenLayers = 3
    config.vocabSize = 97
    config.hiddenDropoutProb = 0.2
    config.attentionProbsDropoutProb = 0.15
    return config
}

func smallPretrainingModel(seed: UInt64 = 3) throws -> BertForPreTraining {
    let model = try BertForPreTraining(config: try smallDropoutConfig())
    model.initializeWeights(seed: seed)
    return model
}

/// max |a − b| over max |a| (with a floor: tensors whose gradient is zero, a key bias, hold noise).
func relativeDifference(_ a: ParameterStore, _ b: ParameterStore) -> Float {
    var worst: Float = 0, scale: Float = 1e-3
    for i in 0..<a.data.count {
        worst = max(worst, abs(a.data.pointer[i] - b.data.pointer[i]))
        scale = max(scale, abs(a.data.pointer[i]))
    }
    return worst / scale
}

/// A job of two ranks whose other rank holds exactly this one's share: every sum doubles. Each
/// started sum copies its values at once and writes them back doubled at `wait()`, so a bucket
/// started before its gradients were final comes back wrong; the starts are recorded.
final class MirroredPair: Communicator, @unchecked Sendable {
    var rank: Int { 0 }
    var size: Int { 2 }
    var localSize: Int { 2 }
    var started: [UnsafeMutableBufferPointer<Float>] = []
    /// Every collective in order: "start" (a bucket), "sum" (blocking).
    var calls: [String] = []

    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        calls.append("sum")
        for i in values.indices { values[i] *= 2 }
    }
    func sum(_ values: inout [Double]) throws {
        calls.append("sum")
        for i in values.indices { values[i] *= 2 }
    }
    func startSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> PendingSum {
        calls.append("start")
        started.append(values)
        return Snapshot(values)
    }
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws {}
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }

    final class Snapshot: PendingSum {
        let target: UnsafeMutableBufferPointer<Float>
        let copy: [Float]
        init(_ values: UnsafeMutableBufferPointer<Float>) {
            target = values
            copy = Array(values)
        }
        func poke() throws {}
        func wait() throws { for i in target.indices { target[i] = 2 * copy[i] } }
    }
}

@Suite struct DataParallelTests {
    @Test(arguments: [1, 2, 3, 4, 7])
    func sharesCoverTheBatchInOrder(_ ranks: Int) {
        for count in [0, 1, 5, 16, 17, 33] {
            let shares = (0..<ranks).map { SingleProcess.share(of: count, rank: $0, size: ranks) }
            #expect(shares.first?.lowerBound == 0)
            #expect(shares.last?.upperBound == count)
            for (a, b) in zip(shares, shares.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            let sizes = shares.map(\.count)
            #expect(sizes.max()! - sizes.min()! <= 1)
        }
        // By cost: consecutive, covering, none empty, none over an equal part by more than one item.
        var rng = SeededRandom(seed: UInt64(ranks))
        for n in [ranks, ranks + 1, 16, 33] {
            let costs = (0..<n).map { _ in 1 + Int(rng.next() % 128) }
            let shares = (0..<ranks).map { SingleProcess.share(ofCosts: costs, rank: $0, size: ranks) }
            #expect(shares.first?.lowerBound == 0 && shares.last?.upperBound == n)
            for (a, b) in zip(shares, shares.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            #expect(shares.allSatisfy { !$0.isEmpty })
            let total = costs.reduce(0, +)
            for share in shares {
                #expect(costs[share].reduce(0, +) <= total / ranks + 2 * costs.max()!, "\(costs) \(shares)")
            }
        }
    }

    /// The contract every rank relies on: shares of a micro-batch (uneven, one without masked
    /// positions), each with its dropout from its first row and normalised by the micro-batch's
    /// counts, add up to the micro-batch's losses and gradient under dropout.
    @Test func sharesOfAMicroBatchAddUpToItsGradient() throws {
        let model = try smallPretrainingModel()
        let rows = RandomPretrainingRows(rows: 7, vocab: model.config.vocabSize, seed: 8)
        let dropout = Dropout(hiddenProbability: 0.2, attentionProbability: 0.15, seed: 99)
        let whole = try model.makeGradients()
        let all = try model.lossAndGradients(rows.batch(0..<7), into: whole, dropout: dropout)

        let summed = try model.makeGradients()
        var loss = PretrainingLoss()
        for rank in 0..<3 {
            let share = SingleProcess.share(of: 7, rank: rank, size: 3)
            loss.add(
                try model.lossAndGradients(
                    rows.batch(share), into: summed, dropout: dropout.startingAt(sequence: share.lowerBound),
                    normalizers: (rows.maskedCount, 7)))
        }
        #expect(abs(loss.mlm - all.mlm) < 1e-5 * abs(all.mlm))
        #expect(abs(loss.nsp - all.nsp) < 1e-5 * abs(all.nsp))
        #expect(loss.mlmCount == all.mlmCount && loss.mlmCorrect == all.mlmCorrect)
        #expect(relativeDifference(whole, summed) < 1e-5)

        // The masks must follow the rows: shares that all start their dropout at row 0 differ.
        let misplaced = try model.makeGradients()
        for rank in 0..<3 {
            let share = SingleProcess.share(of: 7, rank: rank, size: 3)
            _ = try model.lossAndGradients(
                rows.batch(share), into: misplaced, dropout: dropout, normalizers: (rows.maskedCount, 7))
        }
        #expect(relativeDifference(whole, misplaced) > 1e-3)
    }

    /// Sequence classification's shares: each share's mean, weighted by its rows over the batch's.
    @Test func weightedSharesOfAClassificationBatchAddUpToItsGradient() throws {
        var config = try smallDropoutConfig()
        config.hiddenDropoutProb = 0.25
        let model = try BertForSequenceClassification(config: config, task: .classification, labels: ["a", "b", "c"])
        var rng = SeededRandom(seed: 5)
        initializeBertParameters(model.parameters, config: config, rng: &rng)
        let rows = RandomPretrainingRows(rows: 5, vocab: 97, seed: 4)
        let labels: [Int32] = [0, 2, 1, 1, 0]
        let dropout = Dropout(hiddenProbability: 0.25, attentionProbability: 0.1, seed: 7)
        func batch(_ r: Range<Int>) -> EncoderBatch { rows.batch(r).inputs }
        let whole = try model.makeGradients()
        let all = try model.lossAndGradients(
            batch(0..<5), classLabels: labels, into: whole, dropout: dropout
        ).loss
        let summed = try model.makeGradients()
        var loss = 0.0
        for share in [0..<3, 3..<5] {
            let part = try model.makeGradients()
            let weight = Float(share.count) / 5
            loss +=
                Double(weight)
                * (try model.lossAndGradients(
                    batch(share), classLabels: Array(labels[share]), into: part,
                    dropout: dropout.startingAt(sequence: share.lowerBound)
                ).loss)
            for i in 0..<summed.data.count { summed.data.pointer[i] += weight * part.data.pointer[i] }
        }
        #expect(abs(loss - all) < 1e-5 * abs(all))
        #expect(relativeDifference(whole, summed) < 1e-5)
    }

    /// One optimizer step of a (mirrored) two-rank job: bucketed sums started during the backward
    /// and one sum after it both give the one-process step, and the buckets cover the gradient
    /// block once each, started from its end (the last layer) to its start (the embeddings).
    @Test(arguments: [true, false])
    func aTwoRankStepEqualsOneProcessStep(_ bucketed: Bool) throws {
        let rows = RandomPretrainingRows(rows: 4, vocab: 97, seed: 12)
        // No clipping and a plain comparison of the summed gradients: Adam's first step and a
        // norm clip would hide a gradient off by a constant factor.
        func step(_ communicator: Communicator, emptyFirst: Bool = false) throws -> (ParameterStore, ParameterStore) {
            let model = try smallPretrainingModel()
            let trainer = try TrainingStep(
                parameters: model.parameters, config: model.config, optimizer: AdamW(layout: model.parameters.layout),
                schedule: LinearWarmupSchedule(warmupSteps: 0, totalSteps: 10), peakLearningRate: 1e-2,
                maxGradNorm: 1e30, seed: 5, communicator: communicator)
            trainer.bucketed = bucketed
            let n = communicator.size
            try trainer.run(step: 0, microBatches: 2) { k, grads, dropout in
                let part = rows.batch((2 * k)..<(2 * k + 2))
                let masked = part.mlmLabels.count { $0 != -100 }
                return try model.lossAndGradients(
                    part, into: grads, dropout: dropout, normalizers: n > 1 ? (n * masked, n * 2) : nil
                ).total
            }
            return (model.parameters, trainer.gradients)
        }
        let (alone, aloneGradients) = try step(SingleProcess())
        let pair = MirroredPair()
        let (mirrored, mirroredGradients) = try step(pair)
        #expect(relativeDifference(aloneGradients, mirroredGradients) < 1e-5)
        #expect(relativeDifference(alone, mirrored) < 1e-5)
        let total = alone.layout.totalCount
        if bucketed {
            #expect(pair.started.reduce(0) { $0 + $1.count } == total)
            #expect(pair.started.count == 3 + 1)  // three layers, then the embeddings
            #expect(pair.calls == ["start", "start", "start", "sum", "start", "sum"])
            let base = pair.started.map { $0.baseAddress! }
            for (a, b) in zip(base, base.dropFirst()) { #expect(a > b) }
        } else {
            #expect(pair.started.isEmpty)  // one blocking sum of the whole block
        }
    }

    /// A rank whose backward tells no observer (an empty share) still starts every bucket, in the
    /// same order, before its next collective.
    @Test func aRankWithNothingToComputeStartsTheSameBuckets() throws {
        let model = try smallPretrainingModel()
        let pair = MirroredPair()
        let trainer = try TrainingStep(
            parameters: model.parameters, config: model.config, optimizer: AdamW(layout: model.parameters.layout),
            schedule: LinearWarmupSchedule(warmupSteps: 0, totalSteps: 10), peakLearningRate: 1e-2,
            maxGradNorm: 1.0, seed: 5, communicator: pair)
        try trainer.run(step: 0) { _, _, _ in 0 }
        #expect(pair.started.count == 3 + 1)
        // The layers' buckets, the arrival sum, the embeddings' bucket, the losses' sum: as a rank
        // with a backward makes them.
        #expect(pair.calls == ["start", "start", "start", "sum", "start", "sum"])
        let base = pair.started.map { $0.baseAddress! }
        for (a, b) in zip(base, base.dropFirst()) { #expect(a > b) }
    }

    #if !MPI
        /// Under a launcher that says it started 2 processes, a bert without MPI refuses to train: each
        /// process would train alone and write the same folder. (Built without the MPI trait only.)
        @Test func aBertWithoutMPIRefusesToRunAsOneOfManyProcesses() throws {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("nompi-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: root) }
            let corpus = root.appendingPathComponent("corpus.txt")
            try "one sentence.\nanother one.\n\nthird here.\nand a fourth.\n".write(
                to: corpus, atomically: true, encoding: .utf8)
            let out = root.appendingPathComponent("out")
            for launcher in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
                let r = try runBertCLI(
                    [
                        "pretrain", "--corpus", corpus.path, "--preset", "tiny", "--learn-vocab", "50", "--out",
                        out.path,
                        "--steps", "1",
                    ], environment: [launcher: "2"])
                #expect(r.status != 0 && !r.crashed)
                #expect(r.stderr.contains("built without MPI"), "\(r.stderr)")
                #expect(!FileManager.default.fileExists(atPath: out.path))
            }
        }
    #endif
}
