import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert predict`: labels (or scores) of new inputs, one JSON object per line.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with a fine-tuned model: one JSON object per input (JSON Lines).",
        discussion: """
            Inputs are lines of text from the files or stdin (with --pair, "A<TAB>B"), or the \\
            rows of .csv/.tsv/.jsonl files (their text and text_pair columns). Classification \\
            prints {"label", "probability", "probabilities"}; regression prints {"score"}.
            """)

    @Option(
        help:
            "A folder written by bert finetune (its config.json names the head), or a Hugging Face model id (ORG/NAME)."
    ) var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Maximum tokens per input (default: the model's limit).") var maxLength: Int?
    @Flag(help: "Each line is a pair: first and second text separated by a tab.") var pair = false
    @OptionGroup var threads: ThreadOption
    @OptionGroup var numbers: PrecisionOption
    @OptionGroup var columns: ColumnOptions
    @Argument(help: "Input files (default: stdin).") var files: [String] = []

    func runTagging(_ tagger: TokenTagger) throws {
        let out = Output()
        var reader = LineReader(paths: files)
        try reader.forEachBatch { lines in
            for line in lines {
                let tagged = try tagger.tag(line)
                let object: [String: Any] = [
                    "words": tagged.words.map {
                        ["word": $0.word, "tag": $0.tag, "start": $0.start, "end": $0.end] as [String: Any]
                    },
                    "entities": tagged.entities.map {
                        ["type": $0.type, "text": $0.text, "start": $0.start, "end": $0.end] as [String: Any]
                    },
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                out.write(String(decoding: data, as: UTF8.self) + "\n")
            }
        }
        out.flush()
    }

    func runChoice(_ solver: ChoiceSolver) throws {
        var examples: [ChoiceExample] = []
        if files.isEmpty {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent(
                "bert-choice-\(UUID().uuidString).jsonl")
            defer { try? FileManager.default.removeItem(at: url) }
            try FileHandle.standardInput.readDataToEndOfFile().write(to: url)
            // Errors name the input, not the temporary copy of it.
            do { examples = try readChoiceExamples(url, requireLabel: false) } catch BertError.malformedFile(
                let path, let reason)
            {
                throw BertError.malformedFile(
                    path: path.replacingOccurrences(of: url.path, with: "<stdin>"), reason: reason)
            }
        } else {
            for f in files {
                guard FileManager.default.fileExists(atPath: f) else { throw CLIError("\(f): file not found") }
                examples += try readChoiceExamples(URL(fileURLWithPath: f), requireLabel: false)
            }
        }
        let out = Output()
        for p in try solver.predict(examples) {
            let best = p.indices.max { p[$0] < p[$1] }!
            let data = try JSONSerialization.data(
                withJSONObject: ["label": best, "probabilities": p] as [String: Any], options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }

    func runQA(_ answerer: QuestionAnswerer) throws {
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
                        let q = o["question"] as? String, let c = o["context"] as? String
                    else {
                        throw CLIError("input line \(n): expected a JSON object with \"question\" and \"context\"")
                    }
                    examples.append(SquadExample(id: (o["id"] as? String) ?? String(n), question: q, context: c))
                }
            }
        }
        let out = Output()
        for p in try answerer.predict(examples) {
            let object: [String: Any] = [
                "id": p.id, "answer": p.text, "start": p.start, "end": p.end,
                "score": Double(p.score.isFinite ? p.score : 0),
                "null_score": Double(p.nullScore.isFinite ? p.nullScore : 0),
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }

    func run() throws {
        threads.apply()
        switch try FineTunedModel(folder: hub.folder(model), maxLength: maxLength, precision: numbers.precision) {
        case .tagger(let tagger): try runTagging(tagger)
        case .answerer(let answerer): try runQA(answerer)
        case .solver(let solver): try runChoice(solver)
        case .sequence(let tuner): try runSequence(tuner)
        }
    }

    func runSequence(_ tuner: SequenceFineTuner) throws {
        var examples: [LabeledExample] = []
        let tabular =
            !files.isEmpty
            && files.allSatisfy {
                ["csv", "tsv", "jsonl", "json", "ndjson"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased())
            }
        if tabular {
            for f in files { examples += try readExamples(f, columns: columns.names, requireLabel: false) }
        } else {
            var reader = LineReader(paths: files)
            try reader.forEachBatch { lines in
                for line in lines {
                    if pair {
                        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
                        guard parts.count == 2 else {
                            throw CLIError(
                                "input line \(examples.count + 1): --pair needs the two texts separated by a tab")
                        }
                        examples.append(LabeledExample(text: String(parts[0]), textPair: String(parts[1])))
                    } else {
                        examples.append(LabeledExample(text: line))
                    }
                }
            }
        }
        let logits = try tuner.logits(examples)
        let out = Output()
        let network = tuner.model
        for (n, row) in logits.enumerated() {
            guard row.allSatisfy(\.isFinite) else {
                throw BertError.notFinite(
                    what: "the output for input \(n + 1)", advice: "the model overflows Float on this input")
            }
            var object: [String: Any]
            if network.task == .regression {
                object = ["score": Double(row[0])]
            } else {
                let p = softmax(row)
                let best = row.indices.max { row[$0] < row[$1] }!
                object = [
                    "label": network.labels[best], "probability": p[best],
                    "probabilities": Dictionary(uniqueKeysWithValues: zip(network.labels, p).map { ($0, $1) }),
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out.write(String(decoding: data, as: UTF8.self) + "\n")
        }
        out.flush()
    }
}
