import ArgumentParser
import Bert
import BertTokenizer
import BertCompute
import Foundation

/// `bert embed`: sentence embeddings, one JSON array per input line.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sentence embeddings (JSON Lines, one array per input line) as sentence-transformers computes them.")

    @Option(help: "A Hugging Face model folder (config.json, model.safetensors, tokenizer files).")
    var model: String
    @Option(help: "Pooling: mean, cls, max or mean_sqrt_len (default: the folder's 1_Pooling, else mean).")
    var pooling: String?
    @Flag(inversion: .prefixedNo, help: "L2-normalise the embeddings (default: when the folder has a Normalize module).")
    var normalize: Bool?
    @Option(help: "Truncate inputs to N tokens (default: sentence_bert_config.json's max_seq_length, else max_position_embeddings).")
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
        if let p = pooling, Pooling(rawValue: p) == nil {
            throw ValidationError("--pooling must be one of: \(Pooling.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if !(1...9).contains(precision) { throw ValidationError("--precision must be between 1 and 9") }
    }

    func run() throws {
        threads.apply()
        let embedder = try SentenceEmbedder(folder: URL(fileURLWithPath: model),
                                            pooling: pooling.map { [Pooling(rawValue: $0)!] },
                                            normalize: normalize, maxLength: maxLength, truncate: !noTruncation)
        let out = Output()
        var reader = LineReader(paths: files)
        var lineNumber = 0
        try reader.forEachBatch(size: 4096) { lines in
            let vectors: [[Float]]
            do { vectors = try embedder.embed(lines, batchSize: batchSize) } catch let e as InputTooLongError {
                throw CLIError("line \(lineNumber + e.index + 1): \(e.tokens) tokens, more than the maximum \(e.maxLength), and --no-truncation is set")
            }
            for v in vectors {
                out.write("[" + v.map { formatFloat($0, precision) }.joined(separator: ",") + "]\n")
            }
            lineNumber += lines.count
        }
        out.flush()
    }
}

/// Shortest-ish fixed formatting: %.{p}g keeps the output compact and exact enough.
func formatFloat(_ x: Float, _ precision: Int) -> String {
    if x.isNaN { return "NaN" }  // never produced by a healthy model; kept visible rather than hidden
    return String(format: "%.\(precision)g", Double(x))
}

/// `bert params`: the parameter count by component.
struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parameter count by component, from a model folder, a config.json or a preset.")

    @Option(help: "A model folder: counts the tensors of its model.safetensors (and checks them against config.json).")
    var model: String?
    @Option(help: "A config.json: counts the BertModel (with pooler) it describes.")
    var config: String?
    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if [model, config, preset].compactMap({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --model, --config, --preset")
        }
    }

    func run() throws {
        let breakdown: ParameterBreakdown
        var title: String
        if let model {
            let folder = URL(fileURLWithPath: model)
            let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
            breakdown = ParameterBreakdown(file: file)
            title = "\(model)/model.safetensors"
            if let cfg = try? BertConfig(contentsOf: folder.appendingPathComponent("config.json")) {
                let fromConfig = ParameterBreakdown(config: cfg, pooler: file.info("pooler.dense.weight") != nil
                                                    || file.info("bert.pooler.dense.weight") != nil)
                let encoderTotal = breakdown.entries.filter { !$0.component.contains("head") }.reduce(0) { $0 + $1.count }
                if encoderTotal != fromConfig.total {
                    warn("warning: the checkpoint's encoder has \(encoderTotal) parameters but config.json describes \(fromConfig.total)")
                }
            }
        } else if let config {
            breakdown = ParameterBreakdown(config: try BertConfig(contentsOf: URL(fileURLWithPath: config)))
            title = config
        } else {
            let cfg = try BertConfig.preset(preset!)
            breakdown = ParameterBreakdown(config: cfg)
            title = "preset \(preset!): \(cfg.numHiddenLayers) layers, hidden \(cfg.hiddenSize), \(cfg.numAttentionHeads) heads, feed-forward \(cfg.intermediateSize), vocabulary \(cfg.vocabSize)"
        }
        if json {
            let object: [String: Any] = [
                "source": title, "total": breakdown.total, "layers": breakdown.layers,
                "components": breakdown.entries.map { ["component": $0.component, "parameters": $0.count, "tensors": $0.tensors] },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(title)
            print(breakdown.table())
        }
    }
}

/// `bert inspect`: the config and every tensor.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model folder's config and every tensor's name, dtype and shape.")

    @Option(help: "A model folder (config.json, model.safetensors).")
    var model: String

    func run() throws {
        let folder = URL(fileURLWithPath: model)
        let configURL = folder.appendingPathComponent("config.json")
        let config = try BertConfig(contentsOf: configURL)
        print("config.json:")
        print(String(decoding: config.jsonData(), as: UTF8.self), terminator: "")
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        print("model.safetensors: \(file.tensors.count) tensors" + (file.metadata.isEmpty ? "" : ", metadata \(file.metadata)"))
        let width = (file.tensors.map(\.name.count).max() ?? 0) + 2
        for t in file.tensors.sorted(by: { $0.name < $1.name }) {
            print(t.name + String(repeating: " ", count: width - t.name.count) + t.dtype.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + "\(t.shape)")
        }
        let breakdown = ParameterBreakdown(file: file)
        print("parameters: \(breakdown.total)")
    }
}

/// `bert init`: a randomly initialised model folder (BERT's initialisation), e.g. to check that
/// transformers loads what we write.
struct InitModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init",
        abstract: "Write a randomly initialised BertModel (config.json + model.safetensors) to a folder.")

    @Option(help: "A preset: \(BertConfig.presetNames.joined(separator: ", ")).")
    var preset: String?
    @Option(help: "A config.json.")
    var config: String?
    @Option(help: "Output folder.")
    var out: String
    @Option(help: "Random seed.")
    var seed: UInt64 = 0
    @Option(help: "A vocab.txt to copy into the folder (its size sets vocab_size).")
    var vocab: String?

    func validate() throws {
        if (preset == nil) == (config == nil) { throw ValidationError("give exactly one of --preset, --config") }
    }

    func run() throws {
        var cfg = try preset.map { try BertConfig.preset($0) } ?? BertConfig(contentsOf: URL(fileURLWithPath: config!))
        let folder = URL(fileURLWithPath: out)
        if let vocab {
            let text = try String(contentsOf: URL(fileURLWithPath: vocab), encoding: .utf8)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            cfg.vocabSize = lines.count
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: folder.appendingPathComponent("vocab.txt"), options: .atomic)
        }
        let model = try BertModel(config: cfg)
        model.initializeWeights(seed: seed)
        try model.save(to: folder)
        print("wrote \(folder.path): \(model.parameterCount) parameters")
    }
}

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

    @Option(help: "A model folder (config.json, model.safetensors, tokenizer files).") var model: String
    @Option(help: "Comma-separated layers (default: the last four).") var layers = "-1,-2,-3,-4"
    @Option(help: "concat, sum or mean.") var combine = "concat"
    @Flag(help: "One row per word (its first WordPiece) instead of per token; no [CLS]/[SEP].") var words = false
    @Option(help: "Truncate inputs to N tokens (default: max_position_embeddings).") var maxLength: Int?
    @Option(help: "Write a .safetensors file instead of JSON Lines on stdout.") var out: String?
    @OptionGroup var threads: ThreadOption
    @Argument(help: "Input files, one text per line (default: stdin).") var files: [String] = []

    func run() throws {
        threads.apply()
        guard let combination = LayerCombination(rawValue: combine) else { throw CLIError("--combine must be concat, sum or mean") }
        let chosen = try layers.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)) else { throw CLIError("--layers: '\(s)' is not an integer") }
            return n
        }
        if let out, !out.hasSuffix(".safetensors") { throw CLIError("--out must name a .safetensors file") }
        let folder = URL(fileURLWithPath: model)
        let extractor: FeatureExtractor
        do {
            let tokenizer: BertTokenizer
            do { tokenizer = try BertTokenizer(modelFolder: folder) } catch let e as TokenizerError { throw CLIError(e.description) }
            let bert = try BertModel(folder: folder)
            bert.prepareForInference()
            extractor = FeatureExtractor(model: bert, tokenizer: tokenizer, maxLength: maxLength)
            _ = try extractor.resolve(chosen)
        } catch let e as BertError {
            throw CLIError(e.message)
        }
        let d = extractor.dimension(layers: chosen.count, combine: combination)
        var allFeatures: [Float] = [], ids: [Int64] = [], offsets: [Int64] = [], starts: [Int64] = [0]
        let output = Output()
        var reader = LineReader(paths: files)
        try reader.forEachBatch { lines in
            for line in lines {
                let (e, f): (Encoding, [Float])
                do { (e, f) = try extractor.features(line, layers: chosen, combine: combination) } catch let err as BertError { throw CLIError(err.message) }
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
            do { try writer.write(to: URL(fileURLWithPath: out)) } catch let e as SafeTensorsError { throw CLIError(e.description) }
            warn("wrote \(out): features [\(ids.count), \(d)], token_ids, offsets, line_starts (\(starts.count - 1) lines)")
        }
    }
}
