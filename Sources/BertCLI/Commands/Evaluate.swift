import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert evaluate`: the task's metrics of a fine-tuned model on labeled data.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuned model on labeled data; prints the metrics as JSON.")

    @Option(
        help:
            "A folder written by bert finetune (its config.json names the head), or a Hugging Face model id (ORG/NAME)."
    ) var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Labeled data (.csv, .tsv or .jsonl; CoNLL for tagging, SQuAD JSON for QA, JSON Lines for choice).")
    var data: String
    @Option(help: "Maximum tokens per example (default: the model's limit).") var maxLength: Int?
    @OptionGroup var threads: ThreadOption
    @OptionGroup var numbers: PrecisionOption
    @OptionGroup var columns: ColumnOptions

    func run() throws {
        threads.apply()
        guard FileManager.default.fileExists(atPath: data) else { throw CLIError("\(data): file not found") }
        let url = URL(fileURLWithPath: data)
        let metrics: [String: Double]
        // Metrics of nothing are not zeros: an empty data file is an error.
        func nonEmpty<T>(_ items: [T]) throws -> [T] {
            if items.isEmpty { throw CLIError("\(data): no examples to evaluate") }
            return items
        }
        switch try FineTunedModel(folder: hub.folder(model), maxLength: maxLength, precision: numbers.precision) {
        case .solver(let solver): metrics = try solver.evaluate(try nonEmpty(readChoiceExamples(url)))
        case .answerer(let answerer): metrics = try answerer.evaluate(try nonEmpty(readSquad(url)))
        case .tagger(let tagger): metrics = try tagger.evaluate(try nonEmpty(readTaggedSentences(url)))
        case .sequence(let tuner):
            metrics = try tuner.evaluate(try nonEmpty(readExamples(data, columns: columns.names)))
        }
        try printJSON(metrics)
    }
}
