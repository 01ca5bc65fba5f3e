import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// `bert pretrain`: masked LM + next-sentence prediction from raw documents.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a BERT (masked LM + next-sentence prediction) from raw text.",
        discussion: """
            The corpus is one sentence per line with blank lines between documents (the original \
            format), or, with --split-sentences, one paragraph per line. It is streamed into \
            shards in OUT/data (as bert prepare-data does), so it need not fit in memory; or give \
            shards prepared before with --data. The output folder is a Hugging Face \
            BertForPreTraining folder, plus checkpoints/, training_curve.csv and .svg.
            """)

    @Option(parsing: .upToNextOption, help: "Corpus files.")
    var corpus: [String] = []
    @Option(help: "Shards prepared by bert prepare-data (instead of --corpus); its vocab.txt unless --vocab.")
    var data: String?
    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Option(help: "A config.json.")
    var config: String?
    @Option(help: "A vocab.txt.")
    var vocab: String?
    @Option(help: "Learn a WordPiece vocabulary of N tokens from the corpus first.")
    var learnVocab: Int?
    @Option(help: "How --learn-vocab ranks merges: frequency (keeps frequent words whole) or likelihood.")
    var vocabScoring: MergeScoring = .frequency
    @Option(help: "Output folder.")
    var out: String
    @Option(help: "Optimizer steps.") var steps = 1000
    @Option(help: "Instances per step.") var batchSize = 32
    @Option(help: "Micro-batches of --batch-size accumulated into each step (gradient accumulation).") var accumulate =
        1
    @Option(help: "Shard files to stream the corpus into.") var shards = 16
    @Option(help: "Maximum sequence length of an instance.") var seqLen = 128
    @Option(help: "Peak learning rate.") var lr = 1e-4
    @Option(help: "Warm-up steps (then linear decay to 0).") var warmup = 100
    @Option(help: "Random seed (data, masks, initialisation).") var seed: UInt64 = 12345
    @Option(help: "Checkpoint every N steps.") var checkpointEvery = 200
    @Option(help: "Evaluate on held-out documents every N steps.") var evalEvery = 100
    @Option(help: "Print progress every N steps.") var logEvery = 10
    @Option(help: "Times the corpus is turned into instances (static masks).") var dupeFactor = 1
    @OptionGroup var threads: ThreadOption
    @Option(
        help:
            "Under mpirun: sum the gradients over the ranks layer by layer during the backward (bucketed) or in one sum after it (after-backward)."
    )
    var gradientSums: GradientSums = .bucketed
    @Flag(help: "Split each line into sentences (paragraph input).") var splitSentences = false
    @Flag(help: "Mask whole words.") var wholeWordMask = false
    @Flag(help: "New masks every epoch.") var dynamicMasking = false
    @Flag(help: "Keep case (no lowercasing or accent stripping).") var cased = false
    @Flag(help: "Continue from the output folder's latest checkpoint.") var resume = false
    @Flag(help: "Start again in an output folder that holds a run: its checkpoints, data and model are removed.")
    var overwrite = false

    func validate() throws {
        if (preset == nil) == (config == nil) { throw ValidationError("give exactly one of --preset, --config") }
        if corpus.isEmpty == (data == nil) { throw ValidationError("give exactly one of --corpus FILE..., --data DIR") }
        if data != nil {
            if learnVocab != nil {
                throw ValidationError("--learn-vocab needs --corpus (prepared data has its vocabulary)")
            }
        } else if (vocab == nil) == (learnVocab == nil) {
            throw ValidationError("give exactly one of --vocab, --learn-vocab")
        }
        if steps < 1 || batchSize < 1 || accumulate < 1 {
            throw ValidationError("--steps, --batch-size and --accumulate must be positive")
        }
        if steps > Int(Int32.max) { throw ValidationError("--steps must be at most \(Int32.max)") }
        if batchSize > 65536 || accumulate > 65536 {
            throw ValidationError("--batch-size and --accumulate must be at most 65536")
        }
        if resume && overwrite { throw ValidationError("give --resume or --overwrite, not both") }
        if warmup < 0 { throw ValidationError("--warmup must be 0 or more") }
        if checkpointEvery < 0 || evalEvery < 0 || logEvery < 1 {
            throw ValidationError(
                "--checkpoint-every and --eval-every must be 0 or more (0: never), --log-every positive")
        }
        if !(1...1000).contains(dupeFactor) { throw ValidationError("--dupe-factor must be between 1 and 1000") }
        if let n = learnVocab, !(1...1_000_000).contains(n) {
            throw ValidationError("--learn-vocab must be between 1 and 1000000")
        }
        if shards < 1 || shards > 65536 { throw ValidationError("--shards must be between 1 and 65536") }
        if seqLen < 8 { throw ValidationError("--seq-len must be at least 8") }
        if !(lr > 0) || !lr.isFinite { throw ValidationError("--lr must be a positive number") }
    }

    func run() throws {
        try Job.run("bert pretrain", threads: threads) { try run(job: $0) }
    }

    func run(job: Communicator) throws {
        let output = URL(fileURLWithPath: out)
        if job.isLeader { warn("bert pretrain: \(Job.describe(job))") }
        // Rank 0 owns the folder; the others wait for its data, then train their shares.
        guard job.isLeader else { return try train(output, replacing: [], job: job) }
        let replaced = try claimRunFolder(output)
        let existed = FileManager.default.fileExists(atPath: output.path)
        let fresh = !resume
        // Held for the whole command: a second `bert pretrain` on this folder is refused at once.
        let lock = try FolderLock(output, command: "bert pretrain")
        defer { withExtendedLifetime(lock) {} }
        do { try train(output, replacing: replaced, job: job) } catch {
            // A new run that fails before its first checkpoint leaves nothing behind (no half
            // prepared data to be refused by the next attempt); one with a checkpoint keeps it.
            let fm = FileManager.default
            if fresh && !fm.fileExists(atPath: output.appendingPathComponent("checkpoints/latest").path) {
                for name in (try? fm.contentsOfDirectory(atPath: output.path)) ?? [] where name != ".lock" {
                    try? fm.removeItem(at: output.appendingPathComponent(name))
                }
                if !existed { try? fm.removeItem(at: output) }
            }
            throw error
        }
    }

    func train(_ output: URL, replacing replaced: [String], job: Communicator) throws {
        let files = corpus.map { URL(fileURLWithPath: $0) }
        for f in files where !FileManager.default.fileExists(atPath: f.path) {
            throw CLIError("\(f.path): file not found")
        }
        // The inputs are checked before --overwrite removes the old run: a typo must not cost it.
        var cfg = try preset.map { try BertConfig.preset($0) } ?? BertConfig(contentsOf: URL(fileURLWithPath: config!))
        if let vocab { _ = try Vocabulary(contentsOf: URL(fileURLWithPath: vocab)) }
        let normalizer: NormalizerOptions = cased ? .cased : .uncased
        var prepared: PretrainingShardSet?
        try Job.leaderFirst(job) {
            for name in replaced { try FileManager.default.removeItem(at: output.appendingPathComponent(name)) }
            prepared = try leaderData(output, files: files, normalizer: normalizer)
        }
        // The other ranks read what rank 0 checked or made (a shared folder on a cluster).
        let vocabURL = vocabLocation(output)
        let tokenizer = try BertTokenizer(vocabFile: vocabURL, normalizer: normalizer)
        let shardSet = try prepared ?? PretrainingShardSet(folder: shardFolder(output))
        cfg.vocabSize = tokenizer.vocabulary.count
        if seqLen > cfg.maxPositionEmbeddings {
            throw CLIError("--seq-len \(seqLen) is longer than max_position_embeddings \(cfg.maxPositionEmbeddings)")
        }
        let model = try BertForPreTraining(config: cfg)
        model.initializeWeights(seed: seed)
        let run = try PretrainingRun(
            model: model, tokenizer: tokenizer, shards: shardSet, options: runOptions, output: output)
        run.communicator = job
        run.bucketedReduction = gradientSums == .bucketed
        let parameters = ParameterBreakdown(layout: model.parameters.layout).total
        if job.isLeader {
            warn(
                "\(shardSet.documents) documents, \(run.instanceCount) training instances, \(run.heldOutCount) held out; model \(cfg.numHiddenLayers) layers, "
                    + "hidden \(cfg.hiddenSize), \(parameters) parameters; \(Job.describe(job))"
            )
        }
        // Ctrl-C, or SIGTERM (kill, and mpirun ending a job): a checkpoint at the next step.
        signal(SIGINT) { _ in interruption.cancel() }
        signal(SIGTERM) { _ in interruption.cancel() }
        try run.run(resume: resume, cancellation: interruption) { p in
            func pct(_ c: Int, _ n: Int) -> String {
                n == 0 ? "-" : String(format: "%.1f%%", 100 * Double(c) / Double(n))
            }
            var line = String(
                format:
                    "step %d/%d  loss %.4f (mlm %.4f, nsp %.4f)  mlm acc %@  nsp acc %@  lr %.2e  %.0f tokens/s  ETA "
                    + "%@",
                p.step, steps, p.loss.total, p.loss.mlm, p.loss.nsp,
                pct(p.loss.mlmCorrect, p.loss.mlmCount) as NSString,
                pct(p.loss.nspCorrect, p.loss.nspCount) as NSString, p.learningRate, p.tokensPerSecond,
                formatDuration(p.secondsLeft) as NSString)
            if let e = p.evalLoss {
                line += String(
                    format: "\n  held-out: loss %.4f (mlm %.4f, nsp %.4f)  mlm acc %@  nsp acc %@", e.total, e.mlm,
                    e.nsp,
                    pct(e.mlmCorrect, e.mlmCount) as NSString, pct(e.nspCorrect, e.nspCount) as NSString)
            }
            print(line)
            fflush(nil)
        }
        guard job.isLeader else { return }
        if job.size > 1 {
            let steps = Double(max(1, run.stepsRun))
            warn(
                String(
                    format:
                        "gradient sums (%@): %.1f ms a step waited for after the backward, %.1f%% of the step (%.1f ms "
                        + "of it for the slowest rank's backward)",
                    gradientSums.rawValue as NSString, 1000 * run.reductionWait / steps,
                    100 * run.reductionWait / max(run.trainingSeconds, 1e-9), 1000 * run.rankSkew / steps))
        }
        warn(
            "wrote \(output.path): config.json, model.safetensors, tokenizer.json, vocab.txt, tokenizer_config.json, "
                + "training_curve.csv/.svg, checkpoints/"
        )
    }

    /// Where the vocabulary is: --vocab, the prepared data's, or the one learnt into the folder.
    func vocabLocation(_ output: URL) -> URL {
        if let vocab { return URL(fileURLWithPath: vocab) }
        if let data { return URL(fileURLWithPath: data).appendingPathComponent("vocab.txt") }
        return output.appendingPathComponent("vocab.txt")
    }

    /// Where the shards are: --data, or those streamed into the folder.
    func shardFolder(_ output: URL) -> URL {
        data.map { URL(fileURLWithPath: $0) } ?? output.appendingPathComponent("data")
    }

    var runOptions: PretrainingRunOptions {
        var options = PretrainingRunOptions()
        options.steps = steps
        options.batchSize = batchSize
        options.learningRate = lr
        options.warmupSteps = warmup
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.evalEvery = evalEvery
        options.logEvery = logEvery
        options.dynamicMasking = dynamicMasking
        options.data.maxSeqLength = seqLen
        options.data.wholeWordMask = wholeWordMask
        options.data.maxPredictionsPerSeq = max(1, Int((Double(seqLen) * 0.15).rounded(.up)))
        options.accumulationSteps = accumulate
        return options
    }

    /// Rank 0's part: the vocabulary learnt (when asked) and the shards checked or prepared.
    func leaderData(_ output: URL, files: [URL], normalizer: NormalizerOptions) throws -> PretrainingShardSet {
        let vocabURL = vocabLocation(output)
        if vocab == nil && data == nil {
            if !(resume && FileManager.default.fileExists(atPath: vocabURL.path)) {
                warn("learning a \(learnVocab!)-token WordPiece vocabulary from the corpus")
                var learner = WordPieceLearner(size: learnVocab!, normalizer: normalizer)
                learner.scoring = vocabScoring
                for f in files { try learner.add(file: f) }
                try learner.learn().write(to: vocabURL)
            }
        }
        let tokenizer = try BertTokenizer(vocabFile: vocabURL, normalizer: normalizer)
        let options = runOptions
        var shardOptions = ShardOptions()
        shardOptions.data = options.data
        shardOptions.seed = seed
        shardOptions.dupeFactor = dupeFactor
        shardOptions.shardCount = shards
        shardOptions.splitSentences = splitSentences
        if let data {
            let shardSet = try PretrainingShardSet(folder: URL(fileURLWithPath: data))
            // The ids in the shards come from the tokenizer they were prepared with: another
            // vocabulary or casing would ship a model whose tokenizer does not match its training.
            let expected = ShardOptions.tokenization(tokenizer)
            let changed = expected.keys.sorted().filter {
                shardSet.preparation[$0] != nil && shardSet.preparation[$0] != expected[$0]
            }
            if !changed.isEmpty {
                throw CLIError(
                    "\(data) was prepared with another tokenizer ("
                        + changed.map { "\($0): \(shardSet.preparation[$0]!) then, \(expected[$0]!) now" }
                        .joined(separator: "; ") + "); use its vocab.txt and the same --cased")
            }
            return shardSet
        } else {
            let folder = output.appendingPathComponent("data")
            let requested = shardOptions.preparation(files: files, tokenizer: tokenizer)
            let manifest = folder.appendingPathComponent("manifest.json")
            if resume && FileManager.default.fileExists(atPath: manifest.path) {
                // Damaged data is an error, not a reason to prepare it again over the run's own.
                let existing = try PretrainingShardSet(folder: folder)
                // The shards must be the ones these options would make, or the run trains on old
                // data. Manifests written before the preparation was recorded are taken as they are.
                let recorded = existing.preparation
                if recorded.isEmpty {
                    warn(
                        "warning: \(folder.path) does not record how it was prepared: its data is not checked against --corpus"
                    )
                }
                let changed = recorded.isEmpty ? [] : requested.keys.sorted().filter { recorded[$0] != requested[$0] }
                if !changed.isEmpty {
                    throw CLIError(
                        "--resume: \(folder.path) was prepared with other settings ("
                            + changed.map {
                                "\($0): \(existing.preparation[$0] ?? "not recorded") then, \(requested[$0]!) now"
                            }
                            .joined(separator: "; ")
                            + "); resume with the same --corpus and data options, or start again with --overwrite")
                }
                return existing
            } else {
                return try prepareShards(files: files, tokenizer: tokenizer, options: shardOptions, folder: folder)
            }
        }
    }
}

extension Pretrain {
    /// The output folder's state decides what may happen: empty or missing, a new run; holding a
    /// run, only --resume (continue) or --overwrite (start again: returns the entries to remove
    /// once the folder is locked).
    func claimRunFolder(_ output: URL) throws -> [String] {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: output.path, isDirectory: &isFolder) else {
            if resume { throw CLIError("--resume: \(output.path) does not exist (no run to continue)") }
            return []
        }
        guard isFolder.boolValue else { throw CLIError("\(output.path): is a file, not a folder") }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: output.path).filter { $0 != ".lock" } } catch {
            throw CLIError("\(output.path): cannot list it: \(fileErrorReason(error, path: output.path))")
        }
        if resume || entries.isEmpty { return [] }
        // --overwrite removes what is in the folder: never the current folder or an input.
        if overwrite {
            try OutputFolder.checkNotHolding(
                output, inputs: (corpus + [vocab, config, data].compactMap { $0 }).map { URL(fileURLWithPath: $0) })
        }
        guard overwrite else {
            let what = entries.contains("checkpoints") ? "a pretraining run (checkpoints/)" : "\(entries.count) entries"
            throw CLIError(
                "\(output.path) already holds \(what); continue it with --resume, or start again with --overwrite "
                    + "(which removes it)")
        }
        return entries
    }
}

/// How `bert pretrain` sums the gradients over the ranks of an MPI job.
enum GradientSums: String, ExpressibleByArgument, CaseIterable {
    /// Each layer's gradients as soon as its backward is done, while the earlier layers still run.
    case bucketed
    /// One sum of the whole gradient block after the backward.
    case afterBackward = "after-backward"
}

/// Set by SIGINT during `bert pretrain`: the run saves a checkpoint and stops at the next step.
let interruption = Cancellation()
