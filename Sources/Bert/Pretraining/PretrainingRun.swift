import BertCompute
import BertTokenizer
import Foundation

/// Settings of a pretraining run (the `bert pretrain` flags).
public struct PretrainingRunOptions: Sendable {
    /// Optimizer steps to train for.
    public var steps = 1000
    /// Instances per micro-batch (per step, without accumulation).
    public var batchSize = 32
    /// The peak learning rate, reached at the end of warm-up.
    public var learningRate = 1e-4
    /// Steps of linear warm-up from 0, before the linear decay to 0 at ``steps``.
    public var warmupSteps = 100
    /// The seed of the masks and dropout, and of the instances and their order when the documents
    /// are in memory (prepared shards keep their own); see ``Seeds``.
    public var seed: UInt64 = 12345
    /// The global L2 norm each step's gradient is clipped to.
    public var maxGradNorm = 1.0
    /// Steps between checkpoints (0: none before the end; the last step always saves one).
    public var checkpointEvery = 200
    /// Steps between held-out evaluations, also run at the last step (0: never).
    public var evalEvery = 100
    /// Steps between progress reports (also at the last step and with every evaluation).
    public var logEvery = 10
    /// New masks each epoch (RoBERTa-style) instead of masks fixed when the data is made.
    public var dynamicMasking = false
    /// How many times the corpus is turned into instances (static masking, as the reference).
    public var dupeFactor = 1
    /// Documents held out for evaluation: every `heldOutEvery`-th, at most `heldOutDocuments`.
    public var heldOutDocuments = 64
    /// The spacing of the held-out documents, for a run over documents in memory (shards fix
    /// theirs when prepared).
    public var heldOutEvery = 100
    /// Micro-batches of `batchSize` whose gradients are averaged into one step (gradient
    /// accumulation: the effective batch is accumulationSteps × batchSize).
    public var accumulationSteps = 1
    /// How instances are made and masked.
    public var data = PretrainingDataOptions()
    /// The defaults of `bert pretrain`.
    public init() {}
}

/// One line of progress.
public struct PretrainingProgress: Sendable {
    /// Optimizer steps done, this one included.
    public var step: Int
    /// The step's losses, averaged over its micro-batches.
    public var loss: PretrainingLoss
    /// The learning rate of the step.
    public var learningRate: Double
    /// Real (unpadded) tokens trained on per second since the run, or its resumption, began.
    public var tokensPerSecond: Double
    /// Estimated seconds to the last step, at the rate so far.
    public var secondsLeft: Double
    /// The held-out losses, when the step evaluated.
    public var evalLoss: PretrainingLoss?
}

/// A pretraining run: data, model, optimizer and the output folder, with checkpoints that resume
/// to exactly the losses of an uninterrupted run (the data order and masks are functions of the
/// seed and the step; the model, the optimizer moments and the step are saved).
public final class PretrainingRun {
    /// The model trained (in place).
    public let model: BertForPreTraining
    /// The corpus's tokenizer, saved beside the model.
    public let tokenizer: BertTokenizer
    /// The run's settings.
    public let options: PretrainingRunOptions
    /// The run folder: checkpoints/, the training curve and the model.
    public let output: URL
    let builder: PretrainingDataBuilder
    /// The training instances (in memory, or prepared shards on disk).
    public let source: PretrainingInstanceSource
    let evaluation: [MaskedInstance]
    /// AdamW over the model's parameters (its moments are checkpointed).
    public let optimizer: AdamW
    /// Optimizer steps done (restored from the checkpoint on resume).
    public private(set) var step = 0
    var history: [String] = []
    /// The job's processes: under N ranks each computes its share of every micro-batch (the same
    /// instances, masks and dropout one process would use for those rows), the gradients are
    /// summed, and rank 0 alone logs and writes the folder (every rank evaluates its share).
    public var communicator: Communicator = SingleProcess()
    /// Whether the gradient sums go out layer by layer during the backward (see
    /// `TrainingStep.bucketed`).
    public var bucketedReduction = true
    /// Seconds spent waiting for gradient sums after the backward, summed over the run's steps.
    public private(set) var reductionWait = 0.0
    /// Of ``reductionWait``, the seconds spent waiting for the slowest rank's backward.
    public private(set) var rankSkew = 0.0
    /// Steps this `run` call trained (after a resumed step).
    public private(set) var stepsRun = 0
    /// Seconds this `run` call spent in training steps (without evaluation and checkpoints).
    public private(set) var trainingSeconds = 0.0

    /// A run over documents held in memory (a small corpus, the tests): instances are made here,
    /// every `heldOutEvery`-th document (at most `heldOutDocuments`) held out for evaluation, as the
    /// shards do.
    public convenience init(
        model: BertForPreTraining, tokenizer: BertTokenizer, documents: [[[Int32]]],
        options: PretrainingRunOptions, output: URL
    ) throws {
        let builder = try PretrainingDataBuilder(tokenizer: tokenizer, options: options.data)
        guard documents.count >= 2 else {
            throw BertError.invalidInput("pretraining needs at least 2 documents (blank lines separate documents)")
        }
        var split = HeldOutSplit(
            every: options.heldOutEvery, limit: options.heldOutDocuments,
            tokensPerDocument: 4 * options.data.maxSeqLength)
        var trainDocuments = documents.compactMap { split.take($0) }
        trainDocuments += split.finish()
        let evalDocuments = split.held
        var rng = SeededRandom(seed: Seeds.chunkInstances(options.seed, chunk: 0))
        var train: [PretrainingInstance] = []
        trainingInstances(trainDocuments, builder: builder, dupeFactor: options.dupeFactor, rng: &rng) {
            train.append($0)
        }
        guard !train.isEmpty else { throw BertError.invalidInput("the corpus gives no training instances") }
        let evalInstances = heldOutInstances(evalDocuments, builder: builder, seed: options.seed)
        try self.init(
            model: model, tokenizer: tokenizer, source: InMemoryInstances(train, seed: options.seed),
            heldOut: evalInstances, options: options, output: output)
    }

    /// A run over prepared shards (`preparePretrainingShards`, `bert prepare-data`): only the
    /// shards in use are mapped, so the corpus can be larger than memory.
    public convenience init(
        model: BertForPreTraining, tokenizer: BertTokenizer, shards: PretrainingShardSet,
        options: PretrainingRunOptions, output: URL
    ) throws {
        guard shards.vocabularySize == tokenizer.vocabulary.count else {
            throw BertError.malformedFile(
                path: shards.folder.path,
                reason:
                    "was prepared with a \(shards.vocabularySize)-token vocabulary, this run has "
                    + "\(tokenizer.vocabulary.count)"
            )
        }
        guard shards.maxSeqLength <= options.data.maxSeqLength else {
            throw BertError.malformedFile(
                path: shards.folder.path,
                reason:
                    "was prepared for sequences of \(shards.maxSeqLength) tokens, longer than this run's "
                    + "\(options.data.maxSeqLength)"
            )
        }
        try self.init(
            model: model, tokenizer: tokenizer, source: shards, heldOut: try shards.heldOut(limit: 256),
            options: options, output: output)
    }

    /// A run over any source of instances, evaluated on `heldOut` (at most 256); throws when the
    /// vocabulary is larger than the model's vocab_size, the source is empty or accumulation steps
    /// are below 1.
    public init(
        model: BertForPreTraining, tokenizer: BertTokenizer, source: PretrainingInstanceSource,
        heldOut: [PretrainingInstance], options: PretrainingRunOptions, output: URL
    ) throws {
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.output = output
        let builder = try PretrainingDataBuilder(tokenizer: tokenizer, options: options.data)
        self.builder = builder
        guard tokenizer.vocabulary.count <= model.config.vocabSize else {
            throw BertError.invalidInput(
                "the vocabulary (\(tokenizer.vocabulary.count) tokens) is larger than the model's vocab_size "
                    + "\(model.config.vocabSize)"
            )
        }
        guard options.accumulationSteps >= 1 else {
            throw BertError.invalidInput("gradient accumulation steps must be at least 1")
        }
        guard source.count > 0 else { throw BertError.invalidInput("the corpus gives no training instances") }
        self.source = source
        var evalRng = SeededRandom(seed: Seeds.heldOutMasks(options.seed))
        evaluation = heldOut.prefix(256).map { builder.mask($0, rng: &evalRng) }
        optimizer = AdamW(layout: model.parameters.layout)
    }

    /// Training instances in one epoch.
    public var instanceCount: Int { source.count }
    /// Held-out instances the run evaluates on.
    public var heldOutCount: Int { evaluation.count }

    /// Micro-batch `s` (step × accumulation + k): consecutive positions of an epoch-wise seeded
    /// order of the instances. The masks are a function of the seed and the instance (and the
    /// epoch with dynamic masking), so they are the same whenever the batch is made again.
    public func microBatch(at s: Int) throws -> PretrainingBatch {
        builder.batch(try instances(ofMicroBatch: s).map(mask))
    }

    /// This rank's rows of micro-batch `s`, masked: consecutive rows of about equal tokens
    /// (instances differ in length, and the slowest rank sets the pace); all rows alone. Every row
    /// is read once (its length decides the cut), only the share is masked.
    func maskedShare(ofMicroBatch s: Int) throws -> (rows: Range<Int>, items: [MaskedInstance]) {
        let all = try instances(ofMicroBatch: s)
        let rows =
            communicator.size > 1
            ? SingleProcess.share(
                ofCosts: all.map(\.instance.tokens.count), rank: communicator.rank, size: communicator.size)
            : 0..<all.count
        return (rows, all[rows].map(mask))
    }

    /// The instances of micro-batch `s` with their stable indices and epochs.
    func instances(ofMicroBatch s: Int) throws -> [(index: Int, epoch: Int, instance: PretrainingInstance)] {
        let n = source.count, b = options.batchSize
        return try (0..<b).map { j in
            let global = s * b + j
            let (index, instance) = try source.instance(epoch: global / n, position: global % n)
            return (index, global / n, instance)
        }
    }

    /// An instance masked as a function of the seed and its index (and epoch, with dynamic masking).
    func mask(_ item: (index: Int, epoch: Int, instance: PretrainingInstance)) -> MaskedInstance {
        var rng = SeededRandom(
            seed: Seeds.instanceMasks(
                options.seed, instance: item.index, epoch: options.dynamicMasking ? item.epoch : nil))
        return builder.mask(item.instance, rng: &rng)
    }

    /// Mean losses on the held-out instances (no update). Under N ranks, batch i is rank
    /// (i mod N)'s and the sums are added up: every rank returns the same losses.
    public func evaluate() throws -> PretrainingLoss? {
        if evaluation.isEmpty { return nil }
        let scratch = try model.makeGradients()
        var total = PretrainingLoss()
        var batches = 0
        let b = min(max(1, options.batchSize), evaluation.count)
        for (i, start) in stride(from: 0, to: evaluation.count, by: b).enumerated() {
            batches += 1
            guard i % communicator.size == communicator.rank else { continue }
            let part = Array(evaluation[start..<min(evaluation.count, start + b)])
            let l = try model.lossAndGradients(builder.batch(part), into: scratch)
            total.add(l)
        }
        total = try total.summed(over: communicator)
        total.mlm /= Double(batches); total.nsp /= Double(batches)
        return total
    }

    /// The settings and data every rank of a job must share, as one line to compare.
    var jobDescription: String {
        let c = model.config
        return
            "\(options.steps) steps, batch \(options.batchSize) x \(options.accumulationSteps), lr \(options.learningRate), "
            + "warm-up \(options.warmupSteps), seed \(options.seed), clip \(options.maxGradNorm), "
            + "dynamic masking \(options.dynamicMasking), \(options.data), data \(source.identity), "
            + "\(evaluation.count) held out, vocabulary \(tokenizer.vocabulary.count), model \(c.numHiddenLayers)x"
            + "\(c.hiddenSize)x\(c.intermediateSize) heads \(c.numAttentionHeads) vocab \(c.vocabSize) "
            + "positions \(c.maxPositionEmbeddings) dropout \(c.hiddenDropoutProb)/\(c.attentionProbsDropoutProb), "
            + (bucketedReduction ? "bucketed sums" : "one sum after the backward")
    }

    /// Trains until `options.steps`, checkpointing. When `cancellation` is set, saves a
    /// checkpoint and the model so far at the next step boundary and stops with an error.
    public func run(resume: Bool, cancellation: Cancellation? = nil, progress: (PretrainingProgress) -> Void) throws {
        let leader = communicator.isLeader, ranks = communicator.size
        guard options.batchSize >= ranks else {
            throw communicator.everyRank(
                BertError.invalidInput(
                    "--batch-size \(options.batchSize) is smaller than the job's \(ranks) ranks: each rank needs a share "
                        + "of every batch"))
        }
        try communicator.checkSame(jobDescription, what: "the run's settings and data")
        // Rank 0 owns the output folder; the others only read the data.
        let lock = leader ? try FolderLock(output, command: "a pretraining run") : nil
        defer { withExtendedLifetime(lock) {} }
        if leader { removeLeftovers() }
        // A failure to restore on rank 0 must stop every rank, not leave them in the broadcast.
        var restored = [0.0]
        var restoreError: Error?
        if resume && leader {
            do { try restoreLatestCheckpoint() } catch { restoreError = error; restored[0] = 1 }
        }
        try communicator.sum(&restored)
        if let restoreError { throw communicator.everyRank(restoreError) }
        if restored[0] > 0 {
            throw communicator.everyRank(BertError.invalidInput("rank 0 could not restore the checkpoint"))
        }
        let schedule = LinearWarmupSchedule(warmupSteps: options.warmupSteps, totalSteps: options.steps)
        let trainer = try TrainingStep(
            parameters: model.parameters, config: model.config, optimizer: optimizer,
            schedule: schedule, peakLearningRate: options.learningRate,
            maxGradNorm: options.maxGradNorm, seed: options.seed, communicator: communicator)
        trainer.bucketed = bucketedReduction
        trainer.divergenceAdvice = "the last good checkpoint is kept; lower --lr or check the data"
        // Every rank starts from rank 0's model, moments and step.
        try trainer.broadcastState()
        var savedStep = Double(step)
        try withUnsafeMutableBytes(of: &savedStep) { try communicator.broadcast($0, from: 0) }
        step = Int(savedStep)
        let start = Date()
        let startStep = step
        var tokens = 0
        while step < options.steps {
            // Any rank's interruption (SIGINT or SIGTERM: mpirun ends a job with SIGTERM) stops
            // every rank at the same step.
            var stop = [cancellation?.isCancelled == true ? 1.0 : 0]
            if ranks > 1 { try communicator.sum(&stop) }
            if stop[0] > 0 {
                if leader {
                    try saveCheckpoint()
                    try saveModelFolder()  // the model so far is usable (fill-mask, fine-tuning) right away
                }
                throw communicator.everyRank(BertError.interrupted(step: step, saved: "checkpoint and model saved"))
            }
            var loss = PretrainingLoss()
            var stepTokens = 0
            let a = options.accumulationSteps
            let stepStart = Date()
            let (lr, _) = try trainer.run(step: step, microBatches: a) { k, grads, dropout in
                let (share, items) = try maskedShare(ofMicroBatch: step * a + k)
                // The micro-batch's counts, over every rank's share: each share's losses are its
                // sums over them, so that the shares add up to the micro-batch's means.
                var counts = [Double(items.reduce(0) { $0 + $1.labels.count { $0 != -100 } }), Double(items.count)]
                if ranks > 1 { try communicator.sum(&counts) }
                let batch = builder.batch(items)
                let part = try model.lossAndGradients(
                    batch, into: grads, dropout: dropout.startingAt(sequence: share.lowerBound),
                    normalizers: ranks > 1 ? (Int(counts[0]), Int(counts[1])) : nil)
                var scaled = part
                scaled.mlm /= Double(a); scaled.nsp /= Double(a)
                loss.add(scaled)
                stepTokens += batch.inputs.attentionMask?.reduce(0) { $0 + Int($1) } ?? 0
                return part.total
            }
            reductionWait += trainer.reductionWait
            rankSkew += trainer.rankSkew
            if ranks > 1 {
                loss = try loss.summed(over: communicator, also: &stepTokens)
            }
            tokens += stepTokens
            trainingSeconds += Date().timeIntervalSince(stepStart)
            stepsRun += 1
            step += 1
            var evalLoss: PretrainingLoss? = nil
            if options.evalEvery > 0 && (step % options.evalEvery == 0 || step == options.steps) {
                evalLoss = try evaluate()
                // A finite training loss can hide weights gone NaN (the held-out loss shows them).
                if let e = evalLoss, !e.total.isFinite {
                    throw communicator.everyRank(
                        BertError.diverged(
                            step: step, loss: e.total,
                            advice: "the held-out loss; the last good checkpoint is kept, lower --lr or check the data")
                    )
                }
            }
            let elapsed = Date().timeIntervalSince(start)
            let rate = Double(tokens) / max(elapsed, 1e-9)
            let left = elapsed / Double(step - startStep) * Double(options.steps - step)
            history.append(csvLine(step: step, lr: lr, loss: loss, eval: evalLoss))
            if leader && (step % max(1, options.logEvery) == 0 || step == options.steps || evalLoss != nil) {
                progress(
                    PretrainingProgress(
                        step: step, loss: loss, learningRate: lr, tokensPerSecond: rate,
                        secondsLeft: left, evalLoss: evalLoss))
            }
            if leader && options.checkpointEvery > 0 && step % options.checkpointEvery == 0 && step < options.steps {
                try saveCheckpoint()
            }
        }
        guard leader else { return }
        try saveCheckpoint()
        try saveModelFolder()
    }

    func csvLine(step: Int, lr: Double, loss: PretrainingLoss, eval: PretrainingLoss?) -> String {
        func acc(_ c: Int, _ n: Int) -> String { n == 0 ? "" : String(format: "%.4f", Double(c) / Double(n)) }
        var line = String(format: "%d,%.6g,%.6f,%.6f,%.6f,", step, lr, loss.total, loss.mlm, loss.nsp)
        line += acc(loss.mlmCorrect, loss.mlmCount) + "," + acc(loss.nspCorrect, loss.nspCount) + ","
        if let e = eval {
            line +=
                String(format: "%.6f,", e.total) + acc(e.mlmCorrect, e.mlmCount) + "," + acc(e.nspCorrect, e.nspCount)
        } else {
            line += ",,"
        }
        return line
    }

    // MARK: checkpoints

    var checkpointsFolder: URL { output.appendingPathComponent("checkpoints") }

    /// Writes checkpoints/step-N (model, optimizer moments, state) into a temporary folder, renames it
    /// into place, then points checkpoints/latest at it (each step atomic), and removes older ones.
    public func saveCheckpoint() throws {
        try model.parameters.checkFinite(
            "the checkpoint of step \(step)", advice: "training diverged; the last good checkpoint is kept")
        let fm = FileManager.default
        try fm.createDirectory(at: checkpointsFolder, withIntermediateDirectories: true)
        let name = String(format: "step-%08d", step)
        let final = checkpointsFolder.appendingPathComponent(name)
        let temporary = checkpointsFolder.appendingPathComponent(
            name + ".tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: temporary)
        do {
            try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
            var weights = SafeTensorsWriter()
            model.parameters.addTensors(to: &weights)
            try weights.write(to: temporary.appendingPathComponent("model.safetensors"))
            var moments = SafeTensorsWriter()
            moments.add(
                "m", shape: [optimizer.m.count],
                floats: UnsafeBufferPointer(start: optimizer.m.pointer, count: optimizer.m.count))
            moments.add(
                "v", shape: [optimizer.v.count],
                floats: UnsafeBufferPointer(start: optimizer.v.pointer, count: optimizer.v.count))
            try moments.write(to: temporary.appendingPathComponent("optimizer.safetensors"))
            let state: [String: Any] = [
                "step": step, "optimizer_step": optimizer.step, "seed": String(options.seed),
                "batch_size": options.batchSize, "accumulation_steps": options.accumulationSteps,
                "instances": source.count, "ranks": communicator.size,
            ]
            try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
                .write(to: temporary.appendingPathComponent("state.json"))
            try (history.joined(separator: "\n") + (history.isEmpty ? "" : "\n")).write(
                to: temporary.appendingPathComponent("history.csv"), atomically: true, encoding: .utf8)
            try? fm.removeItem(at: final)
            try fm.moveItem(at: temporary, to: final)
        } catch {
            // A failed write (full disk) leaves no partial checkpoint behind.
            try? fm.removeItem(at: temporary)
            throw error
        }
        try Data(name.utf8).write(to: checkpointsFolder.appendingPathComponent("latest"), options: .atomic)
        for old in (try? fm.contentsOfDirectory(atPath: checkpointsFolder.path)) ?? []
        where old.hasPrefix("step-") && old != name && !old.contains(".tmp-") {
            try? fm.removeItem(at: checkpointsFolder.appendingPathComponent(old))
        }
        try writeCurve()
    }

    func restoreLatestCheckpoint() throws {
        let latest = checkpointsFolder.appendingPathComponent("latest")
        guard let name = try? String(contentsOf: latest, encoding: .utf8) else {
            throw BertError.malformedFile(
                path: output.path, reason: "no checkpoint to resume from (checkpoints/latest is missing)")
        }
        let checkpoint = name.trimmingCharacters(in: .whitespacesAndNewlines)
        // Only a name this run writes: "latest" must not lead outside checkpoints/.
        guard checkpoint.hasPrefix("step-"), checkpoint.dropFirst(5).allSatisfy(\.isASCII),
            checkpoint.dropFirst(5).allSatisfy(\.isNumber), checkpoint.count > 5
        else {
            throw BertError.malformedFile(
                path: latest.path,
                reason: "does not name a checkpoint (step-NNNNNNNN), it holds \"\(checkpoint.prefix(40))\"")
        }
        let folder = checkpointsFolder.appendingPathComponent(checkpoint)
        let state = try readJSON(folder.appendingPathComponent("state.json")) as? [String: Any] ?? [:]
        guard let savedStep = state["step"] as? Int, let adamStep = state["optimizer_step"] as? Int else {
            throw BertError.malformedFile(path: "\(folder.path)/state.json", reason: "no step")
        }
        guard (0...Int(Int32.max)).contains(savedStep), (0...Int(Int32.max)).contains(adamStep) else {
            throw BertError.malformedFile(
                path: "\(folder.path)/state.json",
                reason: "step \(savedStep) or optimizer_step \(adamStep) is outside 0...\(Int32.max)")
        }
        if let seed = state["seed"] as? String, seed != String(options.seed) {
            throw BertError.invalidInput(
                "the checkpoint was made with --seed \(seed), not \(options.seed): resuming would change the data order"
            )
        }
        if let b = state["batch_size"] as? Int, b != options.batchSize {
            throw BertError.invalidInput("the checkpoint was made with --batch-size \(b), not \(options.batchSize)")
        }
        if let a = state["accumulation_steps"] as? Int, a != options.accumulationSteps {
            throw BertError.invalidInput(
                "the checkpoint was made with --accumulate \(a), not \(options.accumulationSteps)")
        }
        if let n = state["instances"] as? Int, n != source.count {
            throw BertError.invalidInput(
                "the checkpoint was made on \(n) training instances, this data has \(source.count): resuming would "
                    + "change the data order"
            )
        }
        let weights = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        try model.parameters.load(from: weights)
        let moments = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("optimizer.safetensors"))
        try moments.copyFloats("m", into: optimizer.m.buffer)
        try moments.copyFloats("v", into: optimizer.v.buffer)
        optimizer.restore(step: adamStep)
        step = savedStep
        let csv = (try? String(contentsOf: folder.appendingPathComponent("history.csv"), encoding: .utf8)) ?? ""
        // Only lines this run writes (a step of 0...Int32.max first): a hand-edited step of 1e300
        // would trap where the plot makes it an integer.
        history = try csv.split(separator: "\n").enumerated().map { k, line in
            guard let field = line.split(separator: ",", maxSplits: 1).first, let n = Int(field),
                (0...Int(Int32.max)).contains(n)
            else {
                throw BertError.malformedFile(
                    path: "\(folder.path)/history.csv:\(k + 1)", reason: "does not start with a step number")
            }
            return String(line)
        }
    }

    /// The loss curve as CSV and as an SVG plot in the output folder.
    func writeCurve() throws {
        let header =
            "step,lr,loss,mlm_loss,nsp_loss,mlm_accuracy,nsp_accuracy,eval_loss,eval_mlm_accuracy,eval_nsp_accuracy"
        try ([header] + history).joined(separator: "\n").appending("\n")
            .write(to: output.appendingPathComponent("training_curve.csv"), atomically: true, encoding: .utf8)
        let points = history.compactMap { line -> (Double, Double, Double?)? in
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count >= 8, let s = Double(f[0]), s.isFinite, abs(s) < 1e9, let l = Double(f[2]) else { return nil }
            return (s, l, Double(f[7]))
        }
        try svgPlot(points).write(
            to: output.appendingPathComponent("training_curve.svg"), atomically: true, encoding: .utf8)
    }

    func svgPlot(_ points: [(Double, Double, Double?)]) -> String {
        let w = 640.0, h = 360.0, left = 60.0, bottom = 40.0, top = 20.0, right = 20.0
        let maxStep = max(1, points.map(\.0).max() ?? 1)
        let losses = points.map(\.1) + points.compactMap(\.2)
        let lo = max(0, (losses.min() ?? 0) - 0.2), hi = (losses.max() ?? 1) + 0.2
        func x(_ s: Double) -> Double { left + (w - left - right) * s / maxStep }
        func y(_ l: Double) -> Double { top + (h - top - bottom) * (1 - (l - lo) / max(hi - lo, 1e-9)) }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let l = lo + (hi - lo) * Double(i) / 4
            svg += String(format: "<text x=\"5\" y=\"%.1f\">%.2f</text>\n", y(l) + 4, l)
            let s = maxStep * Double(i) / 4
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\">%d</text>\n", x(s) - 10, h - bottom + 18, Int(s))
        }
        let train = points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1\" points=\"\(train)\"/>\n"
        let evalPoints = points.compactMap { p in p.2.map { String(format: "%.1f,%.1f", x(p.0), y($0)) } }
        if !evalPoints.isEmpty {
            svg +=
                "<polyline fill=\"none\" stroke=\"darkorange\" stroke-width=\"2\" "
                + "points=\"\(evalPoints.joined(separator: " "))\"/>\n"
        }
        svg += "<text x=\"\(left + 10)\" y=\"\(top + 12)\" fill=\"steelblue\">training loss (MLM + NSP)</text>\n"
        svg += "<text x=\"\(left + 10)\" y=\"\(top + 28)\" fill=\"darkorange\">held-out loss</text>\n"
        svg += "<text x=\"\(w / 2)\" y=\"\(h - 5)\">step</text>\n</svg>\n"
        return svg
    }

    /// The output folder as Hugging Face writes a BertForPreTraining: config.json, model.safetensors,
    /// tokenizer.json, vocab.txt, tokenizer_config.json.
    public func saveModelFolder() throws {
        try replaceFiles(in: output) { folder in
            try model.save(to: folder)
            try tokenizer.write(to: folder)
        }
    }

    /// Temporary files a killed or failed write left (the folder is locked: none is in use).
    func removeLeftovers() {
        let fm = FileManager.default
        for folder in [output, checkpointsFolder] {
            for name in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
            where name.contains(".tmp-") || name.hasPrefix(".dat.nosync") {
                try? fm.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }
}
