import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// Labeled examples from a CSV, TSV or JSON Lines file.
func readExamples(_ path: String, columns: ColumnNames, requireLabel: Bool = true) throws -> [LabeledExample] {
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
    return try readLabeledExamples(URL(fileURLWithPath: path), columns: columns, requireLabel: requireLabel)
}

/// The head a fine-tuned folder holds (config.json's architectures).
func architecture(of path: String) throws -> String {
    let url = URL(fileURLWithPath: path).appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: url),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else {
        throw CLIError("\(url.path): missing or not JSON (is this a model folder?)")
    }
    return (object["architectures"] as? [String])?.first ?? "BertModel"
}

/// A fine-tuned model folder, opened as the head its config.json names, with its tokenizer, its
/// encoder prepared for inference (the fast path `bert embed` takes) and inputs truncated to
/// `maxLength` tokens when given (never past the model's positions).
enum FineTunedModel {
    case sequence(SequenceFineTuner)
    case tagger(TokenTagger)
    case answerer(QuestionAnswerer)
    case solver(ChoiceSolver)

    init(_ path: String, maxLength: Int?) throws {
        // As bert finetune: room for [CLS], [SEP] (twice for a pair) and a token of text.
        if let m = maxLength, m < 4 { throw CLIError("--max-length must be at least 4, got \(m)") }
        let folder = URL(fileURLWithPath: path)
        let kind = try architecture(of: path)
        let tokenizer = try BertTokenizer(modelFolder: folder)
        func options(_ config: BertConfig) -> FineTuneOptions {
            var options = FineTuneOptions()
            options.maxLength = min(maxLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
            return options
        }
        switch kind {
        case "BertForTokenClassification":
            let network = try BertForTokenClassification(folder: folder)
            network.prepareForInference()
            self = .tagger(
                TokenTagger(model: network, tokenizer: tokenizer, options: options(network.config)))
        case "BertForQuestionAnswering":
            let network = try BertForQuestionAnswering(folder: folder)
            network.prepareForInference()
            var qa = try QAOptions(folder: folder)
            if let m = maxLength { qa.maxLength = m }
            qa.maxLength = min(qa.maxLength, network.config.maxPositionEmbeddings)
            self = .answerer(
                QuestionAnswerer(
                    model: network, tokenizer: tokenizer, options: FineTuneOptions(), qa: qa))
        case "BertForMultipleChoice":
            let network = try BertForMultipleChoice(folder: folder)
            network.prepareForInference()
            self = .solver(
                ChoiceSolver(model: network, tokenizer: tokenizer, options: options(network.config)))
        default:
            let network = try BertForSequenceClassification(folder: folder)
            network.prepareForInference()
            self = .sequence(
                SequenceFineTuner(
                    model: network, tokenizer: tokenizer, options: options(network.config)))
        }
    }
}
