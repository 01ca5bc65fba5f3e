import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert fill-mask`: the most likely tokens for each [MASK].
struct FillMask: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill-mask",
        abstract: "Print the top tokens and probabilities for each [MASK] of a text (a BertForPreTraining folder).")

    @Option(
        help:
            "A model folder with the masked-LM head (e.g. the output of bert pretrain), or a Hugging Face model id (ORG/NAME)."
    )
    var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "How many tokens to show per mask.") var topK = 5
    @Option(help: "Texts per forward pass.") var batchSize = 32
    @OptionGroup var threads: ThreadOption
    @OptionGroup var numbers: PrecisionOption
    @Option(help: "A file of texts, one per line (- for stdin), instead of the arguments.") var file: String?
    @Argument(help: "Texts containing [MASK].") var texts: [String] = []

    func validate() throws {
        if texts.isEmpty == (file == nil) {
            throw ValidationError("give the texts either as arguments or with --file (one of the two)")
        }
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        threads.apply()
        let folder = try hub.folder(model)
        let network = try BertForPreTraining(folder: folder)
        network.prepareForInference(precision: numbers.precision)
        var tokenizer = try BertTokenizer(modelFolder: folder)
        tokenizer.truncation = Truncation(maxLength: network.config.maxPositionEmbeddings)
        tokenizer.padding = nil
        guard let maskId = tokenizer.tokenId("[MASK]") else { throw CLIError("the vocabulary has no [MASK]") }
        let k = min(topK, network.config.vocabSize)
        var texts = self.texts
        if let file {
            var reader = LineReader(paths: file == "-" ? [] : [file])
            try reader.forEachBatch { texts += $0 }
        }
        let out = Output()
        let perBatch = min(batchSize, max(1, texts.count))  // bounded: `first + perBatch` must not overflow
        for first in stride(from: 0, to: texts.count, by: perBatch) {
            let part = Array(texts[first..<min(texts.count, first + perBatch)])
            let encodings = try tokenizer.encodeBatch(part)
            let batch = EncoderBatch.padded(encodings.map(\.ids), tokenTypeIds: encodings.map(\.typeIds))
            // Every [MASK] of the batch, as a flat position b·S + p, in text order.
            var positions: [Int] = [], owner: [Int] = []
            for (b, e) in encodings.enumerated() {
                let masks = e.ids.indices.filter { e.ids[$0] == maskId }
                if masks.isEmpty {
                    // Name the text by its number and its start: a long one is not echoed whole.
                    let start = part[b].count > 80 ? part[b].prefix(80) + "…" : part[b]
                    throw CLIError(
                        "text \(first + b + 1) (\"\(start)\"): no [MASK] in its first \(e.count) tokens")
                }
                // Masks past the truncation are not predicted: say so rather than print fewer.
                let written = part[b].components(separatedBy: "[MASK]").count - 1
                if masks.count < written {
                    let start = part[b].count > 80 ? part[b].prefix(80) + "…" : part[b]
                    throw CLIError(
                        "text \(first + b + 1) (\"\(start)\"): \(written - masks.count) of its \(written) [MASK]s are past "
                            + "the model's \(network.config.maxPositionEmbeddings) tokens")
                }
                positions += masks.map { b * batch.sequenceLength + $0 }
                owner += masks.map { _ in b }
            }
            let probabilities = try network.maskedTokenProbabilities(batch, positions: positions)
            for (b, text) in part.enumerated() {
                out.write(text + "\n")
                for (n, i) in owner.indices.filter({ owner[$0] == b }).enumerated() {
                    let p = probabilities[i]
                    let best = topIndices(p, k)
                    let shown = best.map {
                        String(format: "%@ %.3f", tokenizer.tokens([Int32($0)])[0] as NSString, p[$0])
                    }
                    out.write("  [MASK] \(n + 1): " + shown.joined(separator: ", ") + "\n")
                }
            }
        }
        out.flush()
    }
}
