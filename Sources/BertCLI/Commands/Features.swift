import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert features`: hidden states of chosen layers per token (the paper's feature-based use).
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-token features from chosen layers (e.g. the sum or concatenation of the last four).",
        discussion: """
            Layers count as transformers' hidden_states: 0 is the embeddings, 1...L the layers, \\
            negative from the end. Without --out, prints one JSON object per input line: tokens, \\
            offsets (Unicode scalars of the line) and features (one row per token). With --out \\
            FILE.safetensors, writes features [rows, dim] (F32), token_ids [rows], offsets \\
            [rows, 2] and line_starts [lines + 1] (I64): line i is rows line_starts[i] ..< \\
            line_starts[i+1]. --words keeps one row per word (its first WordPiece), as BERT's \\
            feature-based NER does.
            """)

    @Option(
        help: "A model folder (config.json, model.safetensors, tokenizer files), or a Hugging Face model id (ORG/NAME)."
    ) var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Comma-separated layers (default: the last four).") var layers = "-1,-2,-3,-4"
    @Option(help: "concat, sum or mean.") var combine: LayerCombination = .concat
    @Flag(help: "One row per word (its first WordPiece) instead of per token; no [CLS]/[SEP].") var words = false
    @Option(help: "Truncate inputs to N tokens (default: max_position_embeddings).") var maxLength: Int?
    @Option(help: "Write a .safetensors file instead of JSON Lines on stdout.") var out: String?
    @OptionGroup var threads: ThreadOption
    @OptionGroup var numbers: PrecisionOption
    @Flag(help: "Replace the --out file when it exists.") var overwrite = false
    @Argument(help: "Input files, one text per line (default: stdin).") var files: [String] = []

    func validate() throws {
        if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2 ([CLS] and [SEP])") }
    }

    func run() throws {
        threads.apply()
        let chosen = try layers.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("--layers: '\(s)' is not an integer")
            }
            return n
        }
        if let out, !out.hasSuffix(".safetensors") { throw CLIError("--out must name a .safetensors file") }
        let folder = try hub.folder(model)
        if let out {
            try checkOutputFile(
                URL(fileURLWithPath: out), overwrite: overwrite,
                inputs: files.map { URL(fileURLWithPath: $0) } + [folder])
        }
        let extractor: FeatureExtractor
        let tokenizer: BertTokenizer
        tokenizer = try BertTokenizer(modelFolder: folder)
        let bert = try BertModel(folder: folder)
        bert.prepareForInference(precision: numbers.precision)
        extractor = FeatureExtractor(model: bert, tokenizer: tokenizer, maxLength: maxLength)
        _ = try extractor.resolve(chosen)

        let d = extractor.dimension(layers: chosen.count, combine: combine)
        var allFeatures: [Float] = [], ids: [Int64] = [], offsets: [Int64] = [], starts: [Int64] = [0]
        let output = Output()
        var reader = LineReader(paths: files)
        var lineNumber = 0
        try reader.forEachBatch { lines in
            for line in lines {
                let (e, f): (Encoding, [Float])
                lineNumber += 1
                do {
                    (e, f) = try extractor.features(line, layers: chosen, combine: combine)
                } catch BertError
                    .invalidInput(let why)
                {
                    throw BertError.invalidInput("line \(lineNumber): \(why)")
                }
                if !f.allSatisfy(\.isFinite) {
                    throw BertError.notFinite(
                        what: "the features of line \(lineNumber)", advice: "the model overflows Float on this input")
                }
                var rows = Array(0..<e.count)
                if words {
                    var seen = Set<Int32>()
                    rows = rows.filter { e.wordIds[$0] >= 0 && seen.insert(e.wordIds[$0]).inserted }
                }
                // A word's span runs from its first piece's start to its last piece's end.
                let spans: [[Int]] = rows.map { r in
                    guard words else { return [e.offsets[r].start, e.offsets[r].end] }
                    let last = (0..<e.count).last { e.wordIds[$0] == e.wordIds[r] } ?? r
                    return [e.offsets[r].start, e.offsets[last].end]
                }
                if out != nil {
                    for (r, span) in zip(rows, spans) {
                        allFeatures += f[r * d..<(r + 1) * d]
                        ids.append(Int64(e.ids[r]))
                        offsets += span.map(Int64.init)
                    }
                    starts.append(Int64(ids.count))
                } else {
                    let object: [String: Any] = [
                        "tokens": extractor.tokenizer.tokens(rows.map { e.ids[$0] }),
                        "offsets": spans,
                        "features": rows.map { r in f[r * d..<(r + 1) * d].map { Double($0) } },
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [])
                    output.write(String(decoding: data, as: UTF8.self) + "\n")
                }
            }
        }
        output.flush()
        if let out {
            var writer = SafeTensorsWriter()
            allFeatures.withUnsafeBufferPointer { writer.add("features", shape: [ids.count, d], floats: $0) }
            writer.add("token_ids", shape: [ids.count], int64s: ids)
            writer.add("offsets", shape: [ids.count, 2], int64s: offsets)
            writer.add("line_starts", shape: [starts.count], int64s: starts)
            try writer.write(to: URL(fileURLWithPath: out))
            warn(
                "wrote \(out): features [\(ids.count), \(d)], token_ids, offsets, line_starts (\(starts.count - 1) "
                    + "lines)"
            )
        }
    }
}
