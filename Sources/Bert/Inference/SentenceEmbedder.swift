import BertCompute
import BertTokenizer
import Foundation

/// How token vectors become one sentence vector (sentence-transformers' Pooling modes).
public enum Pooling: String, Sendable, CaseIterable {
    /// The [CLS] token's vector.
    case cls
    /// The element-wise maximum over the real tokens.
    case max
    /// The mean over the real tokens.
    case mean
    /// The sum over the real tokens divided by the square root of their count.
    case meanSqrtLen = "mean_sqrt_len"
}

/// What sentence-transformers' files say about a model folder (modules.json, the Pooling module's
/// config.json, sentence_bert_config.json). Absent files give the defaults of a plain BERT folder.
public struct SentenceEmbeddingSettings: Sendable, Equatable {
    /// In sentence-transformers' concatenation order (cls, max, mean, mean_sqrt_len).
    public var pooling: [Pooling] = [.mean]
    /// Whether embeddings are L2-normalised (the folder has a Normalize module).
    public var normalize = false
    /// sentence_bert_config.json's max_seq_length, if any.
    public var maxSeqLength: Int?
    /// The Pooling module's word_embedding_dimension (must be the model's hidden size) and file.
    public var wordEmbeddingDimension: Int?
    /// Path of the Pooling module's config.json, named in errors; nil without one.
    public var poolingSource: String?
    /// The defaults of a plain BERT folder: mean pooling, no normalisation, no length limit.
    public init() {}

    /// Refuses settings that do not fit the model they sit beside.
    public func check(against config: BertConfig) throws {
        if let d = wordEmbeddingDimension, d != config.hiddenSize {
            throw BertError.invalidConfig(
                source: poolingSource ?? "1_Pooling/config.json",
                reason: "word_embedding_dimension \(d) is not the model's hidden_size \(config.hiddenSize)")
        }
        if let n = maxSeqLength, n < 2 {
            throw BertError.invalidConfig(
                source: "sentence_bert_config.json", reason: "max_seq_length \(n) leaves no room for [CLS] and [SEP]")
        }
    }

    /// Reads a folder's sentence-transformers files; defaults without modules.json. A module not
    /// applied here (such as Dense) or out of order is an error.
    public init(folder: URL) throws {
        self.init()
        let modulesURL = folder.appendingPathComponent("modules.json")
        guard FileManager.default.fileExists(atPath: modulesURL.path) else { return }
        guard let modules = try readJSON(modulesURL) as? [[String: Any]] else {
            throw BertError.malformedFile(path: modulesURL.path, reason: "expected a JSON list of modules")
        }
        for (index, module) in modules.enumerated() {
            let type = module["type"] as? String ?? ""
            let path = module["path"] as? String ?? ""
            // Every module is applied or the folder refused: a skipped module (a Dense layer, as
            // LaBSE has) gives embeddings that are silently wrong.
            let known = [".Transformer", ".Pooling", ".Normalize"]
            guard known.contains(where: { type.hasSuffix($0) }) else {
                throw BertError.wrongModel(
                    path: modulesURL.path,
                    reason: "module \(index) is \(type.isEmpty ? "of no type" : type) (path \"\(path)\"), which is not "
                        + "applied here (only Transformer, Pooling and Normalize are): its embeddings would be wrong")
            }
            if type.hasSuffix(".Transformer") && (index != 0 || !(path.isEmpty || path == ".")) {
                throw BertError.wrongModel(
                    path: modulesURL.path,
                    reason:
                        "the Transformer must be module 0 at the folder itself (it is module \(index) at \"\(path)\")")
            }
            if type.hasSuffix(".Normalize") && index != modules.count - 1 {
                throw BertError.wrongModel(
                    path: modulesURL.path,
                    reason: "Normalize is module \(index), not the last: the order is not applied")
            }
            if type.hasSuffix(".Pooling") {
                guard !path.contains(".."), !path.hasPrefix("/") else {
                    throw BertError.malformedFile(
                        path: modulesURL.path, reason: "module path \"\(path)\" leaves the folder")
                }
                let url = folder.appendingPathComponent(path).appendingPathComponent("config.json")
                guard let config = try readJSON(url) as? [String: Any] else {
                    throw BertError.malformedFile(path: url.path, reason: "expected a JSON object")
                }
                let modes: [(String, Pooling)] = [
                    ("pooling_mode_cls_token", .cls), ("pooling_mode_max_tokens", .max),
                    ("pooling_mode_mean_tokens", .mean), ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLen),
                ]
                pooling = modes.filter { config[$0.0] as? Bool == true }.map(\.1)
                for unsupported in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]
                where config[unsupported] as? Bool == true {
                    throw BertError.malformedFile(
                        path: url.path, reason: "\(unsupported) is not supported (cls, max, mean, mean_sqrt_len are)")
                }
                if pooling.isEmpty {
                    throw BertError.malformedFile(path: url.path, reason: "no pooling mode is enabled")
                }
                poolingSource = url.path
                wordEmbeddingDimension = (config["word_embedding_dimension"] as? NSNumber)?.intValue
            } else if type.hasSuffix(".Normalize") {
                normalize = true
            }
        }
        let stConfig = folder.appendingPathComponent("sentence_bert_config.json")
        if FileManager.default.fileExists(atPath: stConfig.path),
            let object = try readJSON(stConfig) as? [String: Any], let n = object["max_seq_length"] as? Int
        {
            maxSeqLength = n
        }
    }
}

/// Sentence embeddings as sentence-transformers computes them: tokenize (truncating at the
/// model's max_seq_length), encode, pool over the real tokens, optionally L2-normalise.
public final class SentenceEmbedder: @unchecked Sendable {
    /// The encoder that computes the token vectors.
    public let model: BertModel
    /// The tokenizer, without padding; it truncates to `maxLength` when `truncate` is on.
    public private(set) var tokenizer: BertTokenizer
    /// Pooling modes; their vectors are concatenated in this order.
    public let pooling: [Pooling]
    /// Whether each embedding is L2-normalised after pooling.
    public let normalize: Bool
    /// Tokens per input, special tokens included (at most the model's max_position_embeddings).
    public let maxLength: Int
    /// When false, an input longer than `maxLength` tokens is an error instead of being truncated.
    public let truncate: Bool

    /// Loads a model folder; nil options take the folder's sentence-transformers settings;
    /// `precision` is the encoder's matrix products' (see `BertModel.prepareForInference`).
    public convenience init(
        folder: URL, pooling: [Pooling]? = nil, normalize: Bool? = nil, maxLength: Int? = nil,
        truncate: Bool = true, precision: Precision = .fp32
    ) throws {
        let settings = try SentenceEmbeddingSettings(folder: folder)
        let model = try BertModel(folder: folder)
        try settings.check(against: model.config)
        model.prepareForInference(precision: precision)
        let tokenizer: BertTokenizer
        do { tokenizer = try BertTokenizer(modelFolder: folder) } catch {
            throw BertError.fileAccess(path: folder.path, reason: "cannot load the tokenizer: \(error)")
        }
        try self.init(
            model: model, tokenizer: tokenizer,
            pooling: pooling ?? settings.pooling, normalize: normalize ?? settings.normalize,
            maxLength: maxLength ?? settings.maxSeqLength ?? model.config.maxPositionEmbeddings,
            truncate: truncate)
    }

    /// An embedder of `model`; `maxLength` (2 up to max_position_embeddings) defaults to the
    /// model's limit. No pooling mode, or a vocabulary larger than the model's, is an error.
    public init(
        model: BertModel, tokenizer: BertTokenizer, pooling: [Pooling] = [.mean], normalize: Bool = false,
        maxLength: Int? = nil, truncate: Bool = true
    ) throws {
        let limit = model.config.maxPositionEmbeddings
        let maxLength = maxLength ?? limit
        guard maxLength >= 2 else {
            throw BertError.invalidInput("max length must be at least 2 (room for [CLS] and [SEP]), got \(maxLength)")
        }
        guard maxLength <= limit else {
            throw BertError.invalidInput(
                "max length \(maxLength) is longer than the model's max_position_embeddings \(limit)")
        }
        guard !pooling.isEmpty else { throw BertError.invalidInput("no pooling mode given") }
        if tokenizer.vocabulary.count > model.config.vocabSize {
            throw BertError.invalidInput(
                "the tokenizer's vocabulary (\(tokenizer.vocabulary.count) tokens) is larger than the model's "
                    + "vocab_size \(model.config.vocabSize)"
            )
        }
        self.model = model
        self.pooling = pooling
        self.normalize = normalize
        self.maxLength = maxLength
        self.truncate = truncate
        var t = tokenizer
        t.padding = nil
        t.truncation = truncate ? Truncation(maxLength: maxLength) : nil
        self.tokenizer = t
    }

    /// The dimension of one embedding.
    public var dimension: Int { model.config.hiddenSize * pooling.count }

    /// Embeds every text; the result is in input order. Inputs are sorted by length and batched
    /// (`batchSize` per forward), so padding is minimal.
    public func embed(_ texts: [String], batchSize: Int = 32) throws -> [[Float]] {
        try embed(encodings: try tokenizer.encodeBatch(texts), batchSize: batchSize)
    }

    /// Embeds texts this embedder's ``tokenizer`` already encoded (a server tokenizes off the
    /// compute thread); the result is in input order, as ``embed(_:batchSize:)`` computes it.
    public func embed(encodings: [Encoding], batchSize: Int = 32) throws -> [[Float]] {
        var result = [[Float]](repeating: [], count: encodings.count)
        try forward(encodings, batchSize: batchSize) { out, row, index in
            result[index] = pool(out, row: row, length: encodings[index].count)
        }
        return result
    }

    /// The last hidden state of every token of each encoded text (special tokens included, not
    /// pooled or normalised): [tokens × hidden] per text, row-major, in input order.
    public func tokenStates(encodings: [Encoding], batchSize: Int = 32) throws -> [[Float]] {
        var result = [[Float]](repeating: [], count: encodings.count)
        try forward(encodings, batchSize: batchSize) { out, row, index in
            let h = out.hiddenSize, base = row * out.sequenceLength * h
            result[index] = Array(out.lastHiddenState[base..<(base + encodings[index].count * h)])
        }
        return result
    }

    /// Runs the encoder on the encodings sorted by length in batches of `batchSize` (minimal
    /// padding) and hands each output row to `body` with the encoding's index.
    private func forward(
        _ encodings: [Encoding], batchSize: Int, body: (EncoderOutput, _ row: Int, _ index: Int) -> Void
    ) throws {
        // No token, nothing to pool: an error, not a vector of zeros.
        if let empty = encodings.firstIndex(where: { $0.count == 0 }) {
            throw BertError.invalidInput(
                "text \(empty + 1) has no tokens (it is empty, and the tokenizer adds no [CLS]/[SEP])")
        }
        if !truncate, let i = encodings.firstIndex(where: { $0.count > maxLength }) {
            throw InputTooLongError(index: i, tokens: encodings[i].count, maxLength: maxLength)
        }
        let order = encodings.indices.sorted { encodings[$0].count < encodings[$1].count }
        var start = 0
        while start < order.count {
            let group = Array(order[start..<min(order.count, start + max(1, batchSize))])
            start += group.count
            let batch = EncoderBatch.padded(
                group.map { encodings[$0].ids }, tokenTypeIds: group.map { encodings[$0].typeIds })
            let out = try model.forward(batch)
            for (row, index) in group.enumerated() { body(out, row, index) }
        }
    }

    /// Pools one row of a right-padded output whose first `length` positions are real.
    func pool(_ out: EncoderOutput, row: Int, length: Int) -> [Float] {
        let h = out.hiddenSize
        var v: [Float] = []
        v.reserveCapacity(h * pooling.count)
        let base = row * out.sequenceLength * h
        out.lastHiddenState.withUnsafeBufferPointer { x in
            for mode in pooling {
                switch mode {
                case .cls:
                    v.append(contentsOf: x[base..<(base + h)])
                case .max:
                    var m = [Float](repeating: -.infinity, count: h)
                    for p in 0..<length { for j in 0..<h { m[j] = Swift.max(m[j], x[base + p * h + j]) } }
                    v.append(contentsOf: m)
                case .mean, .meanSqrtLen:
                    var s = [Float](repeating: 0, count: h)
                    for p in 0..<length { for j in 0..<h { s[j] += x[base + p * h + j] } }
                    let d = mode == .mean ? Float(Swift.max(length, 1)) : Float(Swift.max(length, 1)).squareRoot()
                    v.append(contentsOf: s.map { $0 / d })
                }
            }
        }
        return normalize ? Self.normalized(v) : v
    }

    /// `v` scaled to unit length (as sentence-transformers' Normalize: divided by max(‖v‖, 1e-12)).
    public static func normalized(_ v: [Float]) -> [Float] {
        let norm = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        let scale = 1 / Swift.max(norm, 1e-12)
        return v.map { $0 * scale }
    }
}

/// An input with more tokens than allowed while truncation is off.
public struct InputTooLongError: Error, CustomStringConvertible, Sendable {
    /// Position of the input in the list given.
    public let index: Int
    /// The input's token count, special tokens included.
    public let tokens: Int
    /// The most tokens allowed.
    public let maxLength: Int
    public var description: String {
        "input \(index + 1) has \(tokens) tokens, more than the maximum \(maxLength), and truncation is off"
    }
}
