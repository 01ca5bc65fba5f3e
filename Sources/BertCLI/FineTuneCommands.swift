import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// The column options shared by finetune, predict and evaluate.
struct ColumnOptions: ParsableArguments {
    @Option(help: "Column of the text (CSV/TSV header or JSON key).") var textColumn = "text"
    @Option(help: "Column of the second text of a pair (absent: single sentences).") var pairColumn = "text_pair"
    @Option(help: "Column of the label.") var labelColumn = "label"

    var names: ColumnNames {
        var c = ColumnNames()
        c.text = textColumn
        c.textPair = pairColumn
        c.label = labelColumn
        return c
    }
}

/// --threads, shared by the commands that compute: at least 1, applied to `Compute.threads`.
struct ThreadOption: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).") var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func apply() {
        if let threads { Compute.threads = threads }
    }
}

/// The tokenizer of a model folder, its errors as the CLI reports them.
func folderTokenizer(_ folder: URL) throws -> BertTokenizer {
    do { return try BertTokenizer(modelFolder: folder) } catch let e as TokenizerError { throw CLIError(e.description) }
}

func readExamples(_ path: String, columns: ColumnNames, requireLabel: Bool = true) throws -> [LabeledExample] {
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
    do { return try readLabeledExamples(URL(fileURLWithPath: path), columns: columns, requireLabel: requireLabel) } catch let e as BertError {
        throw CLIError(e.message)
    }
}

func printJSON(_ object: Any) throws {
    let json = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

func formatMetrics(_ m: [String: Double]) -> String {
    m.keys.sorted().filter { $0 != "examples" }.map { String(format: "%@ %.4f", $0 as NSString, m[$0]!) }.joined(separator: "  ")
}

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

    @Option(help: "classify, regress, tag, qa or choice.") var task: String
    @Option(help: "A pretrained model folder (BertModel, BertForPreTraining, sentence-transformers, ...).") var model: String
    @Option(help: "Training data.") var train: String
    @Option(help: "Validation data.") var validation: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Epochs (0: write the newly initialised model without training).") var epochs = 3
    @Option(help: "Peak learning rate (linear warm-up over --warmup-ratio of the steps, then linear decay).") var lr = 2e-5
    @Option(help: "Share of the steps spent warming up.") var warmupRatio = 0.1
    @Option(help: "Examples per step.") var batchSize = 32
    @Option(help: "Maximum tokens per example (longer ones are truncated, longest first for pairs; qa: the window size). Default 128, qa 384.") var maxLength: Int?
    var length: Int { maxLength ?? (task == "qa" ? 384 : 128) }
    @Option(help: "Random seed (head initialisation, order, dropout).") var seed: UInt64 = 42
    @OptionGroup var threads: ThreadOption
    @Option(help: "Print the epoch's mean training loss every N steps.") var logEvery = 20
    @Option(help: "qa: overlap of consecutive context windows, in tokens.") var docStride = 128
    @Option(help: "qa: question tokens kept.") var maxQueryLength = 64
    @Option(help: "qa: longest answer, in tokens.") var maxAnswerLength = 30
    @Option(help: "qa (SQuAD 2.0): answer nothing when the null score beats the best span by more than this.") var nullThreshold = 0.0
    @OptionGroup var columns: ColumnOptions

    func validate() throws {
        if !["classify", "regress", "tag", "qa", "choice"].contains(task) {
            throw ValidationError("--task must be classify, regress, tag, qa or choice")
        }
        if docStride < 0 || maxQueryLength < 1 || maxAnswerLength < 1 { throw ValidationError("--doc-stride, --max-query-length, --max-answer-length must be positive") }
        if epochs < 0 || batchSize < 1 || length < 4 { throw ValidationError("--epochs must be 0 or more, --batch-size positive and --max-length at least 4") }
        if !(lr > 0) { throw ValidationError("--lr must be positive") }
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
        return o
    }

    func printReport(_ r: EpochReport, history: inout [[String: Any]]) {
        print(String(format: "epoch %d  train loss %.4f  validation: %@%@", r.epoch, r.trainLoss,
                     formatMetrics(r.metrics) as NSString, r.improved ? "  (best so far: saved)" : ""))
        fflush(nil)
        history.append(["epoch": r.epoch, "train_loss": r.trainLoss, "validation": r.metrics, "saved": r.improved])
        let data = try? JSONSerialization.data(withJSONObject: history, options: [.prettyPrinted, .sortedKeys])
        try? data?.write(to: URL(fileURLWithPath: out).appendingPathComponent("eval_history.json"), options: .atomic)
    }

    /// The closing line on stderr: what went into --out.
    func reportWritten(_ files: String) {
        warn("wrote \(out): \(files)\(epochs > 0 ? ", eval_history.json" : " (the initialised model: --epochs 0)")")
    }

    func runTagging(tokenizer: BertTokenizer, folder: URL) throws {
        let trainSet: [TaggedSentence], validationSet: [TaggedSentence]
        do {
            for f in [train, validation] where !FileManager.default.fileExists(atPath: f) { throw CLIError("\(f): file not found") }
            trainSet = try readTaggedSentences(URL(fileURLWithPath: train))
            validationSet = try readTaggedSentences(URL(fileURLWithPath: validation))
            let tags = tagNames(of: trainSet)
            if let bad = validationSet.first(where: { $0.tags.contains { !tags.contains($0) } }) {
                throw CLIError("\(bad.source): a tag that does not occur in the training data \(tags)")
            }
            let (network, initialised) = try BertForTokenClassification.fromPretrained(folder: folder, labels: tags, seed: seed)
            warn("\(trainSet.count) training and \(validationSet.count) validation sentences; tags \(tags); newly initialised: \(initialised.joined(separator: ", "))")
            let tagger = TokenTagger(model: network, tokenizer: tokenizer, options: options, output: URL(fileURLWithPath: out))
            var history: [[String: Any]] = []
            try tagger.train(trainSet, validation: validationSet, progress: { print($0); fflush(nil) }) { printReport($0, history: &history) }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        reportWritten("config.json, model.safetensors, tokenizer files")
    }

    func runQA(tokenizer: BertTokenizer, folder: URL) throws {
        do {
            for f in [train, validation] where !FileManager.default.fileExists(atPath: f) { throw CLIError("\(f): file not found") }
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
            warn("\(trainSet.count) training and \(validationSet.count) validation questions\(qa.allowNull ? " (SQuAD 2.0: null answers allowed)" : ""); newly initialised: \(initialised.joined(separator: ", "))")
            let output = URL(fileURLWithPath: out)
            let answerer = QuestionAnswerer(model: network, tokenizer: tokenizer, options: options, qa: qa, output: output)
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
            try saveQASettings(qa, to: output)
            var history: [[String: Any]] = []
            try answerer.train(trainSet, validation: validationSet, progress: { print($0); fflush(nil) }) { printReport($0, history: &history) }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        reportWritten("config.json, model.safetensors, qa_settings.json, tokenizer files")
    }

    func runChoice(tokenizer: BertTokenizer, folder: URL) throws {
        do {
            for f in [train, validation] where !FileManager.default.fileExists(atPath: f) { throw CLIError("\(f): file not found") }
            let trainSet = try readChoiceExamples(URL(fileURLWithPath: train))
            let validationSet = try readChoiceExamples(URL(fileURLWithPath: validation))
            let (network, initialised) = try BertForMultipleChoice.fromPretrained(folder: folder, seed: seed)
            warn("\(trainSet.count) training and \(validationSet.count) validation questions; newly initialised: \(initialised.joined(separator: ", "))")
            let solver = ChoiceSolver(model: network, tokenizer: tokenizer, options: options, output: URL(fileURLWithPath: out))
            var history: [[String: Any]] = []
            try solver.train(trainSet, validation: validationSet, progress: { print($0); fflush(nil) }) { printReport($0, history: &history) }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        reportWritten("config.json, model.safetensors, tokenizer files")
    }

    func run() throws {
        threads.apply()
        let folder = URL(fileURLWithPath: model)
        switch task {
        case "choice": return try runChoice(tokenizer: try folderTokenizer(folder), folder: folder)
        case "qa": return try runQA(tokenizer: try folderTokenizer(folder), folder: folder)
        case "tag": return try runTagging(tokenizer: try folderTokenizer(folder), folder: folder)
        default: break
        }
        let trainSet = try readExamples(train, columns: columns.names)
        let validationSet = try readExamples(validation, columns: columns.names)
        let sequenceTask: SequenceTask = task == "classify" ? .classification : .regression
        let labels = sequenceTask == .classification ? labelNames(of: trainSet) : ["score"]
        if sequenceTask == .classification {
            guard labels.count >= 2 else { throw CLIError("\(train): classification needs at least 2 distinct labels, found \(labels)") }
            if let unknown = validationSet.first(where: { !labels.contains($0.label ?? "") }) {
                throw CLIError("\(unknown.source): label '\(unknown.label ?? "")' does not occur in the training data \(labels)")
            }
        }
        let tokenizer = try folderTokenizer(folder)
        do {
            let (network, initialised) = try BertForSequenceClassification.fromPretrained(folder: folder, task: sequenceTask, labels: labels, seed: seed)
            warn("\(trainSet.count) training and \(validationSet.count) validation examples; labels \(labels); newly initialised: \(initialised.joined(separator: ", "))")
            let tuner = SequenceFineTuner(model: network, tokenizer: tokenizer, options: options, output: URL(fileURLWithPath: out))
            var history: [[String: Any]] = []
            try tuner.train(trainSet, validation: validationSet, progress: { print($0); fflush(nil) }) { printReport($0, history: &history) }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        reportWritten("config.json, model.safetensors, tokenizer files")
    }
}

/// The head a fine-tuned folder holds (config.json's architectures).
func architecture(of path: String) throws -> String {
    let url = URL(fileURLWithPath: path).appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CLIError("\(url.path): missing or not JSON (is this a model folder?)")
    }
    return (object["architectures"] as? [String])?.first ?? "BertModel"
}

/// The window and answer settings of a QA model, kept beside it (qa_settings.json).
func saveQASettings(_ qa: QAOptions, to folder: URL) throws {
    let object: [String: Any] = ["max_length": qa.maxLength, "doc_stride": qa.docStride, "max_query_length": qa.maxQueryLength,
                                 "max_answer_length": qa.maxAnswerLength, "n_best": qa.nBest, "null_threshold": qa.nullThreshold,
                                 "version_2_with_negative": qa.allowNull]
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        .write(to: folder.appendingPathComponent("qa_settings.json"), options: .atomic)
}

/// Loads a fine-tuned QA folder, its tokenizer and its qa_settings.json (defaults when absent).
func loadAnswerer(_ path: String, maxLength: Int?) throws -> QuestionAnswerer {
    let folder = URL(fileURLWithPath: path)
    do {
        let network = try BertForQuestionAnswering(folder: folder)
        let tokenizer = try folderTokenizer(folder)
        var qa = QAOptions()
        if let data = try? Data(contentsOf: folder.appendingPathComponent("qa_settings.json")),
           let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            qa.maxLength = s["max_length"] as? Int ?? qa.maxLength
            qa.docStride = s["doc_stride"] as? Int ?? qa.docStride
            qa.maxQueryLength = s["max_query_length"] as? Int ?? qa.maxQueryLength
            qa.maxAnswerLength = s["max_answer_length"] as? Int ?? qa.maxAnswerLength
            qa.nBest = s["n_best"] as? Int ?? qa.nBest
            qa.nullThreshold = (s["null_threshold"] as? NSNumber)?.doubleValue ?? qa.nullThreshold
            qa.allowNull = s["version_2_with_negative"] as? Bool ?? qa.allowNull
        }
        if let m = maxLength { qa.maxLength = m }
        qa.maxLength = min(qa.maxLength, network.config.maxPositionEmbeddings)
        return QuestionAnswerer(model: network, tokenizer: tokenizer, options: FineTuneOptions(), qa: qa, output: folder)
    } catch let e as BertError {
        throw CLIError(e.message)
    }
}

/// Options for running a loaded model: `maxLength` when given, never past the model's positions.
func inferenceOptions(maxLength: Int?, config: BertConfig) -> FineTuneOptions {
    var options = FineTuneOptions()
    options.maxLength = min(maxLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
    return options
}

/// Loads a fine-tuned multiple-choice folder and its tokenizer.
func loadSolver(_ path: String, maxLength: Int?) throws -> ChoiceSolver {
    let folder = URL(fileURLWithPath: path)
    do {
        let network = try BertForMultipleChoice(folder: folder)
        let tokenizer = try folderTokenizer(folder)
        return ChoiceSolver(model: network, tokenizer: tokenizer, options: inferenceOptions(maxLength: maxLength, config: network.config), output: folder)
    } catch let e as BertError {
        throw CLIError(e.message)
    }
}

/// Loads a fine-tuned tagging model folder and its tokenizer.
func loadTagger(_ path: String, maxLength: Int?) throws -> TokenTagger {
    let folder = URL(fileURLWithPath: path)
    do {
        let network = try BertForTokenClassification(folder: folder)
        let tokenizer = try folderTokenizer(folder)
        return TokenTagger(model: network, tokenizer: tokenizer, options: inferenceOptions(maxLength: maxLength, config: network.config), output: folder)
    } catch let e as BertError {
        throw CLIError(e.message)
    }
}

/// Loads a fine-tuned sequence model folder and its tokenizer.
func loadSequenceModel(_ path: String, maxLength: Int?) throws -> SequenceFineTuner {
    let folder = URL(fileURLWithPath: path)
    do {
        let network = try BertForSequenceClassification(folder: folder)
        let tokenizer = try folderTokenizer(folder)
        return SequenceFineTuner(model: network, tokenizer: tokenizer, options: inferenceOptions(maxLength: maxLength, config: network.config), output: folder)
    } catch let e as BertError {
        throw CLIError(e.message)
    }
}

/// `bert predict`: labels (or scores) of new inputs, one JSON object per line.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with a fine-tuned model: one JSON object per input (JSON Lines).",
        discussion: """
            Inputs are lines of text from the files or stdin (with --pair, "A<TAB>B"), or the \\
            rows of .csv/.tsv/.jsonl files (their text and text_pair columns). Classification \\
            prints {"label", "probability", "probabilities"}; regression prints {"score"}.
            """)

    @Option(help: "A folder written by bert finetune (its config.json names the head).") var model: String
    @Option(help: "Maximum tokens per input (default: the model's limit).") var maxLength: Int?
    @Flag(help: "Each line is a pair: first and second text separated by a tab.") var pair = false
    @OptionGroup var threads: ThreadOption
    @OptionGroup var columns: ColumnOptions
    @Argument(help: "Input files (default: stdin).") var files: [String] = []

    func runTagging() throws {
        let tagger = try loadTagger(model, maxLength: maxLength)
        let out = Output()
        var reader = LineReader(paths: files)
        try reader.forEachBatch { lines in
            for line in lines {
                let (words, found) = try tagger.tag(line)
                let object: [String: Any] = [
                    "words": words.map { ["word": $0.word, "tag": $0.tag, "start": $0.start, "end": $0.end] as [String: Any] },
                    "entities": found.map { ["type": $0.type, "text": $0.text, "start": $0.start, "end": $0.end] as [String: Any] },
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                out.write(String(decoding: data, as: UTF8.self) + "\n")
            }
        }
        out.flush()
    }

    func runChoice() throws {
        let solver = try loadSolver(model, maxLength: maxLength)
        var examples: [ChoiceExample] = []
        if files.isEmpty {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("bert-choice-\(UUID().uuidString).jsonl")
            defer { try? FileManager.default.removeItem(at: url) }
            try FileHandle.standardInput.readDataToEndOfFile().write(to: url)
            examples = try readChoiceExamples(url, requireLabel: false)
        } else {
            for f in files {
                guard FileManager.default.fileExists(atPath: f) else { throw CLIError("\(f): file not found") }
                examples += try readChoiceExamples(URL(fileURLWithPath: f), requireLabel: false)
            }
        }
        let out = Output()
        for p in try solver.predict(examples) {
            let best = p.indices.max { p[$0] < p[$1] }!
            let data = try JSONSerialization.data(withJSONObject: ["label": best, "probabilities": p] as [String: Any], options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }

    func runQA() throws {
        let answerer = try loadAnswerer(model, maxLength: maxLength)
        var examples: [SquadExample] = []
        if files.count == 1 && files[0].lowercased().hasSuffix(".json") {
            examples = try readSquad(URL(fileURLWithPath: files[0]), requireAnswers: false)
        } else {
            var reader = LineReader(paths: files)
            var n = 0
            try reader.forEachBatch { lines in
                for line in lines where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                    n += 1
                    guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                          let q = o["question"] as? String, let c = o["context"] as? String else {
                        throw CLIError("input line \(n): expected a JSON object with \"question\" and \"context\"")
                    }
                    examples.append(SquadExample(id: (o["id"] as? String) ?? String(n), question: q, context: c))
                }
            }
        }
        let out = Output()
        for p in try answerer.predict(examples) {
            let object: [String: Any] = ["id": p.id, "answer": p.text, "start": p.start, "end": p.end,
                                         "score": Double(p.score.isFinite ? p.score : 0), "null_score": Double(p.nullScore.isFinite ? p.nullScore : 0)]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }

    func run() throws {
        threads.apply()
        do {
            switch try architecture(of: model) {
            case "BertForTokenClassification": return try runTagging()
            case "BertForQuestionAnswering": return try runQA()
            case "BertForMultipleChoice": return try runChoice()
            default: break
            }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        let tuner = try loadSequenceModel(model, maxLength: maxLength)
        var examples: [LabeledExample] = []
        let tabular = !files.isEmpty && files.allSatisfy { ["csv", "tsv", "jsonl", "json", "ndjson"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
        if tabular {
            for f in files { examples += try readExamples(f, columns: columns.names, requireLabel: false) }
        } else {
            var reader = LineReader(paths: files)
            try reader.forEachBatch { lines in
                for line in lines {
                    if pair {
                        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                        examples.append(LabeledExample(text: String(parts[0]), textPair: parts.count > 1 ? String(parts[1]) : ""))
                    } else {
                        examples.append(LabeledExample(text: line))
                    }
                }
            }
        }
        let logits: [[Float]]
        do { logits = try tuner.logits(examples) } catch let e as BertError { throw CLIError(e.message) }
        let out = Output()
        let network = tuner.model
        for row in logits {
            var object: [String: Any]
            if network.task == .regression {
                object = ["score": Double(row[0])]
            } else {
                let p = softmax(row)
                let best = row.indices.max { row[$0] < row[$1] }!
                object = ["label": network.labels[best], "probability": p[best],
                          "probabilities": Dictionary(uniqueKeysWithValues: zip(network.labels, p).map { ($0, $1) })]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }
}

/// `bert evaluate`: the task's metrics of a fine-tuned model on labeled data.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuned model on labeled data; prints the metrics as JSON.")

    @Option(help: "A folder written by bert finetune (its config.json names the head).") var model: String
    @Option(help: "Labeled data (.csv, .tsv or .jsonl; CoNLL for tagging, SQuAD JSON for QA, JSON Lines for choice).") var data: String
    @Option(help: "Maximum tokens per example (default: the model's limit).") var maxLength: Int?
    @OptionGroup var threads: ThreadOption
    @OptionGroup var columns: ColumnOptions

    func run() throws {
        threads.apply()
        guard FileManager.default.fileExists(atPath: data) else { throw CLIError("\(data): file not found") }
        let url = URL(fileURLWithPath: data)
        let metrics: [String: Double]
        do {
            switch try architecture(of: model) {
            case "BertForMultipleChoice": metrics = try loadSolver(model, maxLength: maxLength).evaluate(try readChoiceExamples(url))
            case "BertForQuestionAnswering": metrics = try loadAnswerer(model, maxLength: maxLength).evaluate(try readSquad(url))
            case "BertForTokenClassification": metrics = try loadTagger(model, maxLength: maxLength).evaluate(try readTaggedSentences(url))
            default: metrics = try loadSequenceModel(model, maxLength: maxLength).evaluate(try readExamples(data, columns: columns.names))
            }
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        try printJSON(metrics)
    }
}
