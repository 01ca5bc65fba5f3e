import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert finetune`: a pretrained BERT plus a task head, all parameters trained on labeled data.
struct FineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a model on labeled data (classify: sentence or pair classification; regress: a number).",
        discussion: """
            Data: CSV (with a header), TSV (with a header) or JSON Lines, columns text, text_pair \\
            (optional) and label. Class names are ordered numerically when all are integers, else \\
            sorted. The model is evaluated on --validation after each epoch and the best epoch \\
            (accuracy; Pearson for regress) is saved to --out as a Hugging Face \\
            BertForSequenceClassification folder with its tokenizer.
            """)

    @Option(help: "What to train: classify, regress, tag, qa or choice.") var task: FineTuneTask
    @Option(
        help: ArgumentHelp(
            "A pretrained model folder (BertModel, BertForPreTraining, sentence-transformers, ...), or a "
                + "Hugging Face model id (ORG/NAME)."))
    var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Training data.") var train: String
    @Option(help: "Validation data.") var validation: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Epochs (0: write the newly initialised model without training).") var epochs = 3
    @Option(help: "Peak learning rate (linear warm-up over --warmup-ratio of the steps, then linear decay).") var lr =
        2e-5
    @Option(help: "Share of the steps spent warming up.") var warmupRatio = 0.1
    @Option(help: "Examples per step.") var batchSize = 32
    @Option(
        help: ArgumentHelp(
            "Maximum tokens per example (longer ones are truncated, longest first for pairs; qa: the window size). "
                + "Default 128, qa 384.")
    ) var maxLength: Int?
    var length: Int { maxLength ?? (task == .qa ? 384 : 128) }
    @Option(help: "Random seed (head initialisation, order, dropout).") var seed: UInt64 = 42
    @OptionGroup var threads: ThreadOption
    @Option(help: "Print the epoch's mean training loss every N steps.") var logEvery = 20
    @Option(help: "qa: overlap of consecutive context windows, in tokens.") var docStride = 128
    @Option(help: "qa: question tokens kept.") var maxQueryLength = 64
    @Option(help: "qa: longest answer, in tokens.") var maxAnswerLength = 30
    @Option(help: "qa (SQuAD 2.0): answer nothing when the null score beats the best span by more than this.")
    var nullThreshold = 0.0
    @OptionGroup var columns: ColumnOptions
    @Flag(help: "Replace an output folder that holds something (even the --model folder, once it is read).")
    var overwrite = false

    func validate() throws {
        if docStride < 0 || maxQueryLength < 1 || maxAnswerLength < 1 {
            throw ValidationError("--doc-stride, --max-query-length, --max-answer-length must be positive")
        }
        if epochs < 0 || batchSize < 1 || length < 4 {
            throw ValidationError("--epochs must be 0 or more, --batch-size positive and --max-length at least 4")
        }
        if epochs > 100_000 || batchSize > 65536 {
            throw ValidationError("--epochs must be at most 100000 and --batch-size at most 65536")
        }
        if !nullThreshold.isFinite { throw ValidationError("--null-threshold must be a finite number") }
        if !(lr > 0) || !lr.isFinite { throw ValidationError("--lr must be a positive number") }
        if !(0...1).contains(warmupRatio) { throw ValidationError("--warmup-ratio must be between 0 and 1") }
        if logEvery < 1 { throw ValidationError("--log-every must be at least 1") }
    }

    var options: FineTuneOptions {
        var o = FineTuneOptions()
        o.epochs = epochs
        o.learningRate = lr
        o.warmupRatio = warmupRatio
        o.batchSize = batchSize
        o.maxLength = length
        o.seed = seed
        o.logEvery = logEvery
        o.communicator = Job.current
        return o
    }

    func printReport(_ r: EpochReport, history: inout [[String: Any]], output: OutputFolder?) {
        print(
            String(
                format: "epoch %d  train loss %.4f  validation: %@%@", r.epoch, r.trainLoss,
                formatMetrics(r.metrics) as NSString, r.improved ? "  (best so far: saved)" : ""))
        fflush(nil)
        history.append(["epoch": r.epoch, "train_loss": r.trainLoss, "validation": r.metrics, "saved": r.improved])
        if let data = try? JSONSerialization.data(
            withJSONObject: jsonSafe(history), options: [.prettyPrinted, .sortedKeys])
        {
            try? output?.writeExtra("eval_history.json", data)
        }
    }

    /// The closing line on stderr: what went into --out (only what was written).
    func reportWritten(_ files: String, output: OutputFolder?) {
        guard let output else { return }  // another rank's: rank 0 writes
        guard output.written else {
            warn("nothing was written to \(out): no epoch was saved")
            return
        }
        warn("wrote \(out): \(files)\(epochs > 0 ? ", eval_history.json" : " (the initialised model: --epochs 0)")")
    }

    func runTagging(tokenizer: BertTokenizer, folder: URL, output: OutputFolder?) throws {
        let trainSet: [TaggedSentence], validationSet: [TaggedSentence]
        for f in [train, validation] where !FileManager.default.fileExists(atPath: f) {
            throw CLIError("\(f): file not found")
        }
        trainSet = try readTaggedSentences(URL(fileURLWithPath: train))
        validationSet = try readTaggedSentences(URL(fileURLWithPath: validation))
        let tags = tagNames(of: trainSet)
        if let bad = validationSet.first(where: { $0.tags.contains { !tags.contains($0) } }) {
            throw CLIError("\(bad.source): a tag that does not occur in the training data \(tags)")
        }
        let (network, initialised) = try BertForTokenClassification.fromPretrained(
            folder: folder, labels: tags, seed: seed)
        Job.note(
            "\(trainSet.count) training and \(validationSet.count) validation sentences; tags \(tags); newly "
                + "initialised: \(initialised.joined(separator: ", "))"
        )
        let tagger = TokenTagger(
            model: network, tokenizer: tokenizer, options: options, output: output)
        var history: [[String: Any]] = []
        try tagger.train(
            trainSet, validation: validationSet,
            progress: {
                if Job.current.isLeader { print($0); fflush(nil) }
            }
        ) { printReport($0, history: &history, output: output) }

        reportWritten("config.json, model.safetensors, tokenizer files", output: output)
    }

    func runQA(tokenizer: BertTokenizer, folder: URL, output: OutputFolder?) throws {
        for f in [train, validation] where !FileManager.default.fileExists(atPath: f) {
            throw CLIError("\(f): file not found")
        }
        let trainSet = try readSquad(URL(fileURLWithPath: train))
        let validationSet = try readSquad(URL(fileURLWithPath: validation))
        var qa = QAOptions()
        qa.maxLength = length
        qa.docStride = docStride
        qa.maxQueryLength = maxQueryLength
        qa.maxAnswerLength = maxAnswerLength
        qa.nullThreshold = nullThreshold
        qa.allowNull = (trainSet + validationSet).contains { $0.isImpossible }
        let (network, initialised) = try BertForQuestionAnswering.fromPretrained(folder: folder, seed: seed)
        Job.note(
            "\(trainSet.count) training and \(validationSet.count) validation "
                + "questions\(qa.allowNull ? " (SQuAD 2.0: null answers allowed)" : ""); newly initialised: "
                + "\(initialised.joined(separator: ", "))"
        )
        let answerer = QuestionAnswerer(model: network, tokenizer: tokenizer, options: options, qa: qa, output: output)
        var history: [[String: Any]] = []
        try answerer.train(
            trainSet, validation: validationSet,
            progress: {
                if Job.current.isLeader { print($0); fflush(nil) }
            }
        ) { printReport($0, history: &history, output: output) }

        reportWritten("config.json, model.safetensors, qa_settings.json, tokenizer files", output: output)
    }

    func runChoice(tokenizer: BertTokenizer, folder: URL, output: OutputFolder?) throws {
        for f in [train, validation] where !FileManager.default.fileExists(atPath: f) {
            throw CLIError("\(f): file not found")
        }
        let trainSet = try readChoiceExamples(URL(fileURLWithPath: train))
        let validationSet = try readChoiceExamples(URL(fileURLWithPath: validation))
        let (network, initialised) = try BertForMultipleChoice.fromPretrained(folder: folder, seed: seed)
        Job.note(
            "\(trainSet.count) training and \(validationSet.count) validation questions; newly initialised: "
                + "\(initialised.joined(separator: ", "))"
        )
        let solver = ChoiceSolver(
            model: network, tokenizer: tokenizer, options: options, output: output)
        var history: [[String: Any]] = []
        try solver.train(
            trainSet, validation: validationSet,
            progress: {
                if Job.current.isLeader { print($0); fflush(nil) }
            }
        ) { printReport($0, history: &history, output: output) }

        reportWritten("config.json, model.safetensors, tokenizer files", output: output)
    }

    func run() throws {
        try Job.run("bert finetune", threads: threads) { try run(job: $0) }
    }

    func run(job: Communicator) throws {
        if job.isLeader { warn("bert finetune: \(Job.describe(job))") }
        // Rank 0 resolves (downloads) the model first; the others then find it in the cache.
        var resolved: URL?
        try Job.leaderFirst(job) { resolved = try hub.folder(model) }
        let folder = try resolved ?? hub.folder(model)
        // Claimed first: an output that may not be replaced is refused before any training.
        // The data must survive the write; the model folder itself may be replaced (it is read first).
        let modelURL = folder.standardizedFileURL
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        // Rank 0 alone claims and writes the folder.
        let output =
            job.isLeader
            ? try OutputFolder(
                outURL, overwrite: overwrite,
                inputs: [train, validation].map { URL(fileURLWithPath: $0) } + (modelURL == outURL ? [] : [modelURL]))
            : nil
        switch task {
        case .choice:
            return try runChoice(tokenizer: try BertTokenizer(modelFolder: folder), folder: folder, output: output)
        case .qa: return try runQA(tokenizer: try BertTokenizer(modelFolder: folder), folder: folder, output: output)
        case .tag:
            return try runTagging(tokenizer: try BertTokenizer(modelFolder: folder), folder: folder, output: output)
        case .classify, .regress: break
        }
        let trainSet = try readExamples(train, columns: columns.names)
        let validationSet = try readExamples(validation, columns: columns.names)
        let sequenceTask: SequenceTask = task == .classify ? .classification : .regression
        let labels = sequenceTask == .classification ? labelNames(of: trainSet) : ["score"]
        if sequenceTask == .classification {
            guard labels.count >= 2 else {
                throw CLIError("\(train): classification needs at least 2 distinct labels, found \(labels)")
            }
            if let unknown = validationSet.first(where: { !labels.contains($0.label ?? "") }) {
                throw CLIError(
                    "\(unknown.source): label '\(unknown.label ?? "")' does not occur in the training data \(labels)")
            }
        }
        let tokenizer = try BertTokenizer(modelFolder: folder)
        let (network, initialised) = try BertForSequenceClassification.fromPretrained(
            folder: folder, task: sequenceTask, labels: labels, seed: seed)
        Job.note(
            "\(trainSet.count) training and \(validationSet.count) validation examples; labels \(labels); newly "
                + "initialised: \(initialised.joined(separator: ", "))"
        )
        let tuner = SequenceFineTuner(
            model: network, tokenizer: tokenizer, options: options, output: output)
        var history: [[String: Any]] = []
        try tuner.train(
            trainSet, validation: validationSet,
            progress: {
                if Job.current.isLeader { print($0); fflush(nil) }
            }
        ) { printReport($0, history: &history, output: output) }

        reportWritten("config.json, model.safetensors, tokenizer files", output: output)
    }
}
