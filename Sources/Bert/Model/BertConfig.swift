import BertCompute
import BertTokenizer
import Foundation

/// A BERT architecture, with the keys and defaults of Hugging Face's `BertConfig` (`config.json`).
public struct BertConfig: @unchecked Sendable, Equatable {
    /// Rows of the word embedding table, the token ids the model takes (vocab_size).
    public var vocabSize = 30522
    /// Width H of the embeddings and every hidden state (hidden_size); a multiple of
    /// ``numAttentionHeads``.
    public var hiddenSize = 768
    /// Encoder layers (num_hidden_layers).
    public var numHiddenLayers = 12
    /// Attention heads per layer (num_attention_heads).
    public var numAttentionHeads = 12
    /// Width of the feed-forward block between its two dense layers (intermediate_size),
    /// usually 4 × hidden_size.
    public var intermediateSize = 3072
    /// The feed-forward activation by its Hugging Face name (hidden_act): gelu, gelu_new,
    /// gelu_pytorch_tanh, gelu_fast or relu.
    public var hiddenAct = "gelu"
    /// Dropout probability in training after the embeddings and on each sub-layer's output
    /// (hidden_dropout_prob).
    public var hiddenDropoutProb: Double = 0.1
    /// Dropout probability in training on the attention probabilities (attention_probs_dropout_prob).
    public var attentionProbsDropoutProb: Double = 0.1
    /// Rows of the position embedding table: the longest sequence the model takes (max_position_embeddings).
    public var maxPositionEmbeddings = 512
    /// Token type (segment) ids the model knows (type_vocab_size); 2 for sentence pairs.
    public var typeVocabSize = 2
    /// Added to the variance in every LayerNorm (layer_norm_eps); must be positive.
    public var layerNormEps: Double = 1e-12
    /// Standard deviation of the normal distribution new weights are drawn from (initializer_range).
    public var initializerRange: Double = 0.02
    /// The padding token's id, whose embedding row starts at zero (pad_token_id; a null reads
    /// as 0).
    public var padTokenId = 0
    /// `architectures` as written in the file (e.g. ["BertModel"], ["BertForPreTraining"]).
    public var architectures: [String] = ["BertModel"]
    /// Every other key of the file, kept so that saving does not lose what we do not use.
    public var extra: [String: Any] = [:]

    /// BERT-base with the uncased English vocabulary: the defaults of transformers' BertConfig().
    public init() {}

    public static func == (a: BertConfig, b: BertConfig) -> Bool {
        a.vocabSize == b.vocabSize && a.hiddenSize == b.hiddenSize && a.numHiddenLayers == b.numHiddenLayers
            && a.numAttentionHeads == b.numAttentionHeads && a.intermediateSize == b.intermediateSize
            && a.hiddenAct == b.hiddenAct && a.hiddenDropoutProb == b.hiddenDropoutProb
            && a.attentionProbsDropoutProb == b.attentionProbsDropoutProb
            && a.maxPositionEmbeddings == b.maxPositionEmbeddings && a.typeVocabSize == b.typeVocabSize
            && a.layerNormEps == b.layerNormEps && a.initializerRange == b.initializerRange
            && a.padTokenId == b.padTokenId && a.architectures == b.architectures
            && canonicalJSON(a.extra) == canonicalJSON(b.extra)
    }

    /// The kept keys as sorted JSON: equal exactly when they would be written the same.
    private static func canonicalJSON(_ object: [String: Any]) -> Data? {
        try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    /// Width of one attention head: hidden_size / num_attention_heads.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// The activation ``hiddenAct`` names (GELU for a name it does not know, which
    /// ``validate(source:)`` rejects).
    public var activation: Activation {
        Activation(huggingFaceName: hiddenAct) ?? .gelu
    }

    /// The named sizes of the BERT paper and its miniatures (Turc et al.): layers / hidden size,
    /// 64-wide heads, a feed-forward of 4H, the uncased English vocabulary.
    public static let presetNames = ["tiny", "mini", "small", "medium", "base", "large"]

    /// The config of a named size in ``presetNames`` (case-insensitive), the other keys at
    /// their defaults; throws for any other name.
    public static func preset(_ name: String) throws -> BertConfig {
        let sizes: (Int, Int)
        switch name.lowercased() {
        case "tiny": sizes = (2, 128)
        case "mini": sizes = (4, 256)
        case "small": sizes = (4, 512)
        case "medium": sizes = (8, 512)
        case "base": sizes = (12, 768)
        case "large": sizes = (24, 1024)
        default:
            throw BertError.invalidInput(
                "unknown preset '\(name)'; expected one of: \(presetNames.joined(separator: ", "))")
        }
        var c = BertConfig()
        c.numHiddenLayers = sizes.0
        c.hiddenSize = sizes.1
        c.numAttentionHeads = sizes.1 / 64
        c.intermediateSize = 4 * sizes.1
        return c
    }

    /// Checks that the numbers describe a model we can build.
    public func validate(source: String = "config") throws {
        func positive(_ v: Int, _ key: String) throws {
            if v <= 0 { throw BertError.invalidConfig(source: source, reason: "\(key) must be positive, got \(v)") }
        }
        try positive(vocabSize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(numHiddenLayers, "num_hidden_layers")
        try positive(numAttentionHeads, "num_attention_heads")
        try positive(intermediateSize, "intermediate_size")
        try positive(maxPositionEmbeddings, "max_position_embeddings")
        try positive(typeVocabSize, "type_vocab_size")
        // Sizes whose parameter count would overflow, or could never fit in memory, are errors here,
        // before anything is allocated.
        // Each size bounded first, so that the products below cannot overflow (a hidden_size of
        // 2^40 would trap in `4 * h * h` before any check).
        for (v, key, most) in [
            (vocabSize, "vocab_size", 1 << 31), (hiddenSize, "hidden_size", 1 << 20),
            (numHiddenLayers, "num_hidden_layers", 1 << 12), (numAttentionHeads, "num_attention_heads", 1 << 20),
            (intermediateSize, "intermediate_size", 1 << 22),
            (maxPositionEmbeddings, "max_position_embeddings", 1 << 20),
            (typeVocabSize, "type_vocab_size", 1 << 20),
        ] where v > most {
            throw BertError.invalidConfig(
                source: source, reason: "\(key) \(v) is more than the largest supported, \(most)")
        }
        let limit = 1 << 40
        var total = 0
        for (a, b) in [
            (vocabSize + maxPositionEmbeddings + typeVocabSize, hiddenSize),
            (numHiddenLayers, 4 * hiddenSize * hiddenSize + 2 * hiddenSize * intermediateSize),
        ] {
            let (ab, o1) = a.multipliedReportingOverflow(by: b)
            let (sum, o2) = total.addingReportingOverflow(ab)
            if o1 || o2 || sum > limit || hiddenSize > 1 << 20 || intermediateSize > 1 << 22 {
                throw BertError.invalidConfig(
                    source: source,
                    reason:
                        "the sizes describe an impossibly large model (vocab_size \(vocabSize), hidden_size "
                        + "\(hiddenSize), intermediate_size \(intermediateSize), num_hidden_layers "
                        + "\(numHiddenLayers))"
                )
            }
            total = sum
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw BertError.invalidConfig(
                source: source,
                reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        if Activation(huggingFaceName: hiddenAct) == nil {
            throw BertError.invalidConfig(
                source: source,
                reason:
                    "hidden_act '\(hiddenAct)' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)")
        }
        if !(layerNormEps > 0) {
            throw BertError.invalidConfig(source: source, reason: "layer_norm_eps must be positive")
        }
        if let p = extra["position_embedding_type"] as? String, p != "absolute" {
            throw BertError.invalidConfig(
                source: source, reason: "position_embedding_type '\(p)' is not supported (only 'absolute')")
        }
        if padTokenId < 0 || padTokenId >= vocabSize {
            throw BertError.invalidConfig(
                source: source, reason: "pad_token_id \(padTokenId) is outside the vocabulary (size \(vocabSize))")
        }
    }

    // MARK: config.json

    /// Reads and validates a config.json file; the keys it does not use are kept in ``extra``.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw BertError.fileAccess(
                path: url.path, reason: "cannot read the config: \(fileErrorReason(error, path: url.path))")
        }
        try self.init(json: data, source: url.path)
    }

    /// Parses and validates the bytes of a config.json; `source` names it in errors. The keys
    /// it does not use are kept in ``extra``.
    public init(json data: Data, source: String = "config.json") throws {
        guard let object = try? JSONSerialization.jsonObject(with: droppingByteOrderMark(data)),
            let dict = object as? [String: Any]
        else {
            throw BertError.invalidConfig(source: source, reason: "not a JSON object")
        }
        var c = BertConfig()
        var rest = dict
        func int(_ key: String, _ target: inout Int) throws {
            guard let v = rest.removeValue(forKey: key) else { return }
            guard let n = v as? NSNumber, !isJSONBool(n), Double(n.int64Value) == n.doubleValue else {
                throw BertError.invalidConfig(source: source, reason: "\(key) must be an integer, got \(v)")
            }
            target = n.intValue
        }
        func double(_ key: String, _ target: inout Double) throws {
            guard let v = rest.removeValue(forKey: key) else { return }
            guard let n = v as? NSNumber, !isJSONBool(n) else {
                throw BertError.invalidConfig(source: source, reason: "\(key) must be a number, got \(v)")
            }
            target = n.doubleValue
        }
        try int("vocab_size", &c.vocabSize)
        try int("hidden_size", &c.hiddenSize)
        try int("num_hidden_layers", &c.numHiddenLayers)
        try int("num_attention_heads", &c.numAttentionHeads)
        try int("intermediate_size", &c.intermediateSize)
        try int("max_position_embeddings", &c.maxPositionEmbeddings)
        try int("type_vocab_size", &c.typeVocabSize)
        if rest["pad_token_id"] is NSNull { rest["pad_token_id"] = nil }
        try int("pad_token_id", &c.padTokenId)
        try double("hidden_dropout_prob", &c.hiddenDropoutProb)
        try double("attention_probs_dropout_prob", &c.attentionProbsDropoutProb)
        try double("layer_norm_eps", &c.layerNormEps)
        try double("initializer_range", &c.initializerRange)
        if let act = rest.removeValue(forKey: "hidden_act") {
            guard let s = act as? String else {
                throw BertError.invalidConfig(source: source, reason: "hidden_act must be a string")
            }
            c.hiddenAct = s
        }
        if let arch = rest.removeValue(forKey: "architectures") {
            guard let a = arch as? [String] else {
                throw BertError.invalidConfig(source: source, reason: "architectures must be a list of strings")
            }
            c.architectures = a
        }
        if let t = rest["model_type"] as? String, t != "bert" {
            throw BertError.invalidConfig(source: source, reason: "model_type is '\(t)', not 'bert'")
        }
        // Keys whose only accepted value the writer always writes are not kept: a config read
        // back from what we saved then equals the one saved.
        if rest["model_type"] as? String == "bert" { rest.removeValue(forKey: "model_type") }
        if rest["position_embedding_type"] as? String == "absolute" {
            rest.removeValue(forKey: "position_embedding_type")
        }
        c.extra = rest
        try c.validate(source: source)
        self = c
    }

    /// The config as Hugging Face writes it (sorted keys, two-space indent).
    public func jsonData() -> Data {
        var d = extra
        d["vocab_size"] = vocabSize
        d["hidden_size"] = hiddenSize
        d["num_hidden_layers"] = numHiddenLayers
        d["num_attention_heads"] = numAttentionHeads
        d["intermediate_size"] = intermediateSize
        d["hidden_act"] = hiddenAct
        d["hidden_dropout_prob"] = hiddenDropoutProb
        d["attention_probs_dropout_prob"] = attentionProbsDropoutProb
        d["max_position_embeddings"] = maxPositionEmbeddings
        d["type_vocab_size"] = typeVocabSize
        d["layer_norm_eps"] = layerNormEps
        d["initializer_range"] = initializerRange
        d["pad_token_id"] = padTokenId
        d["architectures"] = architectures
        d["model_type"] = "bert"
        if d["position_embedding_type"] == nil { d["position_embedding_type"] = "absolute" }
        if d["torch_dtype"] == nil && d["dtype"] == nil { d["dtype"] = "float32" }
        let data =
            (try? JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        return data + Data("\n".utf8)
    }

    /// Writes ``jsonData()`` to `url`, atomically (a crash never leaves half a file).
    public func write(to url: URL) throws {
        try writeAtomically(jsonData(), to: url)
    }
}

/// Writes `data` to a temporary file beside `url` and renames it over `url`, so a crash never
/// leaves a half-written file.
func writeAtomically(_ data: Data, to url: URL) throws {
    do {
        try data.write(to: url, options: .atomic)
    } catch {
        throw BertError.fileAccess(path: url.path, reason: "cannot write: \(fileErrorReason(error, path: url.path))")
    }
}

/// JSON true/false come back from JSONSerialization as NSNumbers whose type code is "c".
func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
