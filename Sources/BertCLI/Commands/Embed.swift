import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert embed`: sentence embeddings, one JSON array per input line.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sentence embeddings (JSON Lines, one array per input line) as sentence-transformers computes them.")

    @Option(
        help: "A model folder (config.json, model.safetensors, tokenizer files), or a Hugging Face model id (ORG/NAME)."
    )
    var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Pooling: mean, cls, max or mean_sqrt_len (default: the folder's 1_Pooling, else mean).")
    var pooling: Pooling?
    @Flag(
        inversion: .prefixedNo, help: "L2-normalise the embeddings (default: when the folder has a Normalize module).")
    var normalize: Bool?
    @Option(
        help: ArgumentHelp(
            "Truncate inputs to N tokens (default: sentence_bert_config.json's max_seq_length, else "
                + "max_position_embeddings).")
    )
    var maxLength: Int?
    @Flag(help: "Fail on an input longer than the maximum length instead of truncating it.")
    var noTruncation = false
    @Option(help: "Inputs per forward pass (inputs are sorted by length first).")
    var batchSize = 32
    @OptionGroup var threads: ThreadOption
    @Option(help: "Digits after the decimal point in the output.")
    var precision = 7
    @Argument(help: "Input files, one text per line (default: stdin).")
    var files: [String] = []

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if !(1...9).contains(precision) { throw ValidationError("--precision must be between 1 and 9") }
    }

    func run() throws {
        threads.apply()
        let embedder = try SentenceEmbedder(
            folder: try hub.folder(model),
            pooling: pooling.map { [$0] },
            normalize: normalize, maxLength: maxLength, truncate: !noTruncation)
        let out = Output()
        var reader = LineReader(paths: files)
        var lineNumber = 0
        try reader.forEachBatch(size: 4096) { lines in
            let vectors: [[Float]]
            do { vectors = try embedder.embed(lines, batchSize: batchSize) } catch let e as InputTooLongError {
                throw CLIError(
                    "line \(lineNumber + e.index + 1): \(e.tokens) tokens, more than the maximum \(e.maxLength), and "
                        + "--no-truncation is set"
                )
            }
            for (k, v) in vectors.enumerated() {
                // JSON has no NaN: an embedding that is not finite is an error, never "[nan, ...]".
                guard v.allSatisfy(\.isFinite) else {
                    throw BertError.notFinite(
                        what: "the embedding of line \(lineNumber + k + 1)",
                        advice: "the model overflows Float on this input")
                }
                out.write("[" + v.map { formatFloat($0, precision) }.joined(separator: ",") + "]\n")
            }
            lineNumber += lines.count
        }
        out.flush()
    }
}
