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
            format), or, with --split-sentences, one paragraph per line. The output folder is a \
            Hugging Face BertForPreTraining folder, plus checkpoints/, training_curve.csv and .svg.
            """)

    @Option(parsing: .upToNextOption, help: "Corpus files.")
    var corpus: [String]
    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Option(help: "A config.json.")
    var config: String?
    @Option(help: "A vocab.txt.")
    var vocab: String?
    @Option(help: "Learn a WordPiece vocabulary of N tokens from the corpus first.")
    var learnVocab: Int?
    @Option(help: "How --learn-vocab ranks merges: frequency (keeps frequent words whole) or likelihood.")
    var vocabScoring: String = "frequency"
    @Option(help: "Output folder.")
    var out: String
    @Option(help: "Optimizer steps.") var steps = 1000
    @Option(help: "Instances per step.") var batchSize = 32
    @Option(help: "Maximum sequence length of an instance.") var seqLen = 128
    @Option(help: "Peak learning rate.") var lr = 1e-4
    @Option(help: "Warm-up steps (then linear decay to 0).") var warmup = 100
    @Option(help: "Random seed (data, masks, initialisation).") var seed: UInt64 = 12345
    @Option(help: "Checkpoint every N steps.") var checkpointEvery = 200
    @Option(help: "Evaluate on held-out documents every N steps.") var evalEvery = 100
    @Option(help: "Print progress every N steps.") var logEvery = 10
    @Option(help: "Times the corpus is turned into instances (static masks).") var dupeFactor = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Flag(help: "Split each line into sentences (paragraph input).") var splitSentences = false
    @Flag(help: "Mask whole words.") var wholeWordMask = false
    @Flag(help: "New masks every epoch.") var dynamicMasking = false
    @Flag(help: "Keep case (no lowercasing or accent stripping).") var cased = false
    @Flag(help: "Continue from the output folder's latest checkpoint.") var resume = false

    func validate() throws {
        if (preset == nil) == (config == nil) { throw ValidationError("give exactly one of --preset, --config") }
        if (vocab == nil) == (learnVocab == nil) { throw ValidationError("give exactly one of --vocab, --learn-vocab") }
        if steps < 1 || batchSize < 1 { throw ValidationError("--steps and --batch-size must be positive") }
        if seqLen < 8 { throw ValidationError("--seq-len must be at least 8") }
        if !(lr > 0) { throw ValidationError("--lr must be positive") }
    }

    func run() throws {
        if let t = threads { Compute.threads = t }
        let output = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let files = corpus.map { URL(fileURLWithPath: $0) }
        for f in files where !FileManager.default.fileExists(atPath: f.path) { throw CLIError("\(f.path): file not found") }
        let normalizer: NormalizerOptions = cased ? .cased : .uncased
        let vocabURL: URL
        if let vocab {
            vocabURL = URL(fileURLWithPath: vocab)
        } else {
            vocabURL = output.appendingPathComponent("vocab.txt")
            if !(resume && FileManager.default.fileExists(atPath: vocabURL.path)) {
                warn("learning a \(learnVocab!)-token WordPiece vocabulary from the corpus")
                var learner = WordPieceLearner(size: learnVocab!, normalizer: normalizer)
                guard let scoring = MergeScoring(rawValue: vocabScoring) else {
                    throw CLIError("--vocab-scoring must be frequency or likelihood")
                }
                learner.scoring = scoring
                for f in files { try learner.add(file: f) }
                try learner.learn().write(to: vocabURL)
            }
        }
        let tokenizer: BertTokenizer
        do { tokenizer = try BertTokenizer(vocabFile: vocabURL, normalizer: normalizer) } catch let e as TokenizerError {
            throw CLIError(e.description)
        }
        var cfg = try preset.map { try BertConfig.preset($0) } ?? BertConfig(contentsOf: URL(fileURLWithPath: config!))
        cfg.vocabSize = tokenizer.vocabulary.count
        if seqLen > cfg.maxPositionEmbeddings { throw CLIError("--seq-len \(seqLen) is longer than max_position_embeddings \(cfg.maxPositionEmbeddings)") }
        let model = try BertForPreTraining(config: cfg)
        model.initializeWeights(seed: seed)
        warn("reading and tokenizing the corpus")
        let documents = try readDocuments(files: files, tokenizer: tokenizer, splitSentences: splitSentences)
        var options = PretrainingRunOptions()
        options.steps = steps
        options.batchSize = batchSize
        options.learningRate = lr
        options.warmupSteps = warmup
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.evalEvery = evalEvery
        options.logEvery = logEvery
        options.dupeFactor = dupeFactor
        options.dynamicMasking = dynamicMasking
        options.data.maxSeqLength = seqLen
        options.data.wholeWordMask = wholeWordMask
        options.data.maxPredictionsPerSeq = max(1, Int((Double(seqLen) * 0.15).rounded(.up)))
        let run = try PretrainingRun(model: model, tokenizer: tokenizer, documents: documents, options: options, output: output)
        let parameters = ParameterBreakdown(layout: model.parameters.layout).total
        warn("\(documents.count) documents, \(run.instanceCount) instances; model \(cfg.numHiddenLayers) layers, hidden \(cfg.hiddenSize), \(parameters) parameters; \(Compute.threads) threads")
        signal(SIGINT) { _ in pretrainingInterrupted = true }
        do {
            try run.run(resume: resume) { p in
                func pct(_ c: Int, _ n: Int) -> String { n == 0 ? "-" : String(format: "%.1f%%", 100 * Double(c) / Double(n)) }
                var line = String(format: "step %d/%d  loss %.4f (mlm %.4f, nsp %.4f)  mlm acc %@  nsp acc %@  lr %.2e  %.0f tokens/s  ETA %@",
                                  p.step, steps, p.loss.total, p.loss.mlm, p.loss.nsp, pct(p.loss.mlmCorrect, p.loss.mlmCount) as NSString,
                                  pct(p.loss.nspCorrect, p.loss.nspCount) as NSString, p.learningRate, p.tokensPerSecond,
                                  formatDuration(p.secondsLeft) as NSString)
                if let e = p.evalLoss {
                    line += String(format: "\n  held-out: loss %.4f (mlm %.4f, nsp %.4f)  mlm acc %@  nsp acc %@", e.total, e.mlm, e.nsp,
                                   pct(e.mlmCorrect, e.mlmCount) as NSString, pct(e.nspCorrect, e.nspCount) as NSString)
                }
                print(line)
                fflush(nil)
            }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        warn("wrote \(output.path): config.json, model.safetensors, tokenizer.json, vocab.txt, tokenizer_config.json, training_curve.csv/.svg, checkpoints/")
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

/// `bert fill-mask`: the most likely tokens for each [MASK].
struct FillMask: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fill-mask",
        abstract: "Print the top tokens and probabilities for each [MASK] of a text (a BertForPreTraining folder).")

    @Option(help: "A model folder with the masked-LM head (e.g. the output of bert pretrain).")
    var model: String
    @Option(help: "How many tokens to show per mask.") var topK = 5
    @Argument(help: "Texts containing [MASK].") var texts: [String]

    func run() throws {
        let folder = URL(fileURLWithPath: model)
        let network = try BertForPreTraining(folder: folder)
        var tokenizer = try BertTokenizer(modelFolder: folder)
        tokenizer.truncation = Truncation(maxLength: network.config.maxPositionEmbeddings)
        tokenizer.padding = nil
        guard let maskId = tokenizer.tokenId("[MASK]") else { throw CLIError("the vocabulary has no [MASK]") }
        for text in texts {
            let e = try tokenizer.encode(text)
            let positions = e.ids.indices.filter { e.ids[$0] == maskId }
            if positions.isEmpty { throw CLIError("no [MASK] in: \(text)") }
            let probs = try network.maskedTokenProbabilities(
                EncoderBatch(batchSize: 1, sequenceLength: e.count, inputIds: e.ids, tokenTypeIds: e.typeIds), positions: positions)
            print(text)
            for (n, p) in probs.enumerated() {
                let best = p.indices.sorted { p[$0] > p[$1] }.prefix(topK)
                let shown = best.map { String(format: "%@ %.3f", tokenizer.tokens([Int32($0)])[0] as NSString, p[$0]) }
                print("  [MASK] \(n + 1): " + shown.joined(separator: ", "))
            }
        }
    }
}
