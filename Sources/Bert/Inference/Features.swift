import BertCompute
import BertTokenizer
import Foundation

/// How the chosen layers' hidden states are combined per token (the paper's feature-based NER
/// table: e.g. the sum or the concatenation of the last four layers).
public enum LayerCombination: String, Sendable, CaseIterable {
    /// The layers side by side: a feature of layers × hidden size.
    case concat
    /// The layers' element-wise sum.
    case sum
    /// The layers' element-wise mean.
    case mean
}

/// Token features of a BERT for the feature-based use: hidden states of chosen layers, combined.
public struct FeatureExtractor {
    /// The encoder whose hidden states are read.
    public let model: BertModel
    /// The tokenizer, truncating to the max length and not padding.
    public let tokenizer: BertTokenizer

    /// An extractor of `model`; texts are truncated to `maxLength` tokens (default and upper bound:
    /// the model's max_position_embeddings).
    public init(model: BertModel, tokenizer: BertTokenizer, maxLength: Int? = nil) {
        self.model = model
        var t = tokenizer
        t.truncation = Truncation(
            maxLength: min(maxLength ?? model.config.maxPositionEmbeddings, model.config.maxPositionEmbeddings))
        t.padding = nil
        self.tokenizer = t
    }

    /// Layer indices as transformers' hidden_states: 0 is the embeddings, 1...L the layers;
    /// negative counts from the end (−1 the last layer). Out of range is an error.
    public func resolve(_ layers: [Int]) throws -> [Int] {
        let count = model.config.numHiddenLayers + 1
        return try layers.map { l in
            let k = l < 0 ? count + l : l
            guard (0..<count).contains(k) else {
                throw BertError.invalidInput(
                    "layer \(l) does not exist (the model has hidden states 0...\(count - 1), or -\(count)...-1)")
            }
            return k
        }
    }

    /// The width of a combined feature.
    public func dimension(layers: Int, combine: LayerCombination) -> Int {
        combine == .concat ? layers * model.config.hiddenSize : model.config.hiddenSize
    }

    /// One text's tokens and their features, [tokens × dimension] row-major.
    public func features(_ text: String, pair: String? = nil, layers: [Int], combine: LayerCombination) throws -> (
        encoding: Encoding, features: [Float]
    ) {
        let ks = try resolve(layers)
        guard !ks.isEmpty else { throw BertError.invalidInput("choose at least one layer") }
        let e = try tokenizer.encode(text, pair: pair)
        guard e.count > 0 else {
            throw BertError.invalidInput("the text has no tokens (it is empty, and the tokenizer adds no [CLS]/[SEP])")
        }
        let out = try model.forward(
            EncoderBatch(batchSize: 1, sequenceLength: e.count, inputIds: e.ids, tokenTypeIds: e.typeIds),
            outputHiddenStates: true)
        let h = model.config.hiddenSize, n = e.count
        let d = dimension(layers: ks.count, combine: combine)
        var result = [Float](repeating: 0, count: n * d)
        for (j, k) in ks.enumerated() {
            let state = out.hiddenStates[k]
            for t in 0..<n {
                for c in 0..<h {
                    switch combine {
                    case .concat: result[t * d + j * h + c] = state[t * h + c]
                    case .sum, .mean: result[t * d + c] += state[t * h + c]
                    }
                }
            }
        }
        if combine == .mean { for i in result.indices { result[i] /= Float(ks.count) } }
        return (e, result)
    }
}
