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
    @Option(
        help: ArgumentHelp(
            "Number format of the encoder's matrix products: fp32 (transformers' results), bf16 or int8 "
                + "(faster, close to fp32: see the README's Precision section). A number N is the older "
                + "spelling of --digits N.")
    )
    var precision: EmbedPrecision = .format(.fp32)
    @Option(help: "Digits after the decimal point in the output (default 7).")
    var digits: Int?
    @Argument(help: "Input files, one text per line (default: stdin).")
    var files: [String] = []

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if case .digits = precision, digits != nil {
            throw ValidationError("--precision N is the older spelling of --digits N: give one of them")
        }
        if !(1...9).contains(outputDigits) {
            // Named as the user spelled it.
            if case .digits = precision { throw ValidationError("--precision N (digits) must be between 1 and 9") }
            throw ValidationError("--digits must be between 1 and 9")
        }
    }

    /// Digits after the decimal point: --digits, or the older --precision N.
    var outputDigits: Int {
        if case .digits(let n) = precision { return n }
        return digits ?? 7
    }

    func run() throws {
        threads.apply()
        let format: Precision
        if case .format(let p) = precision { format = p } else { format = .fp32 }
        let embedder = try SentenceEmbedder(
            folder: try hub.folder(model),
            pooling: pooling.map { [$0] },
            normalize: normalize, maxLength: maxLength, truncate: !noTruncation, precision: format)
        let digits = outputDigits
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
                out.write("[" + v.map { formatFloat($0, digits) }.joined(separator: ",") + "]\n")
            }
            lineNumber += lines.count
        }
        out.flush()
    }
}

/// `bert embed --precision`: a number format, or (the option's meaning before there were number
/// formats) the digits of the output, kept so that existing scripts go on working.
enum EmbedPrecision: ExpressibleByArgument {
    case format(Precision)
    case digits(Int)

    init?(argument: String) {
        if let p = Precision(rawValue: argument) {
            self = .format(p)
        } else if let n = Int(argument) {
            self = .digits(n)
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { Precision.allCases.map(\.rawValue) }
    var defaultValueDescription: String {
        switch self {
        case .format(let p): p.rawValue
        case .digits(let n): "\(n)"
        }
    }
}
