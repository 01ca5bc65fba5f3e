import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// The real all-MiniLM-L6-v2 against transformers and sentence-transformers
/// (Fixtures/minilm_reference.safetensors, made by scripts/make_model_reference.py).
@Suite(
    .enabled(
        if: ModelFixtures.haveMiniLM || ModelFixtures.required,
        "needs .cache/models/all-MiniLM-L6-v2 (scripts/fetch-model.sh)"))
struct MiniLMParityTests {
    static let inputs: [String] = {
        let data = (try? Data(contentsOf: ModelFixtures.url("minilm_inputs.json"))) ?? Data()
        return (try? JSONSerialization.jsonObject(with: data) as? [String]) ?? []
    }()

    let reference: SafeTensorsFile
    let embedder: SentenceEmbedder

    init() throws {
        reference = try ModelFixtures.reference("minilm_reference.safetensors")
        embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder)
    }

    @Test func settingsComeFromTheFolder() throws {
        #expect(Self.inputs.count >= 20)
        #expect(embedder.pooling == [.mean])
        #expect(embedder.normalize)
        #expect(embedder.maxLength == 256)
        #expect(embedder.model.config.numHiddenLayers == 6)
    }

    @Test func eachInputAloneMatchesTransformers() throws {
        let model = embedder.model
        var worstHidden: Float = 0, worstPooler: Float = 0
        var truncated = 0
        for (i, text) in Self.inputs.enumerated() {
            let encoding = try embedder.tokenizer.encode(text)
            let refIds = try reference.int32s("input_ids.\(i)")
            try #require(encoding.ids == refIds, "input \(i): our ids differ from transformers'")
            if encoding.count == embedder.maxLength { truncated += 1 }
            let out = try model.forward(
                EncoderBatch(
                    batchSize: 1, sequenceLength: encoding.count, inputIds: encoding.ids,
                    tokenTypeIds: encoding.typeIds))
            worstHidden = max(worstHidden, maxAbsDiff(out.lastHiddenState, try reference.floats("hidden.\(i)")))
            worstPooler = max(worstPooler, maxAbsDiff(out.poolerOutput!, try reference.floats("pooler.\(i)")))
        }
        #expect(truncated >= 1, "no input reached the 256-token limit")
        #expect(worstHidden <= 1e-4, "last hidden state: max |diff| \(worstHidden)")
        #expect(worstPooler <= 1e-4, "pooler: max |diff| \(worstPooler)")
    }

    @Test func everyLayerOfTheFirstInputMatches() throws {
        let encoding = try embedder.tokenizer.encode(Self.inputs[0])
        let out = try embedder.model.forward(
            EncoderBatch(batchSize: 1, sequenceLength: encoding.count, inputIds: encoding.ids),
            outputHiddenStates: true)
        #expect(out.hiddenStates.count == 7)
        for k in 0..<7 {
            let d = maxAbsDiff(out.hiddenStates[k], try reference.floats("layers.\(k).0"))
            #expect(d <= 1e-4, "hidden state \(k): max |diff| \(d)")
        }
    }

    @Test func onePaddedBatchMatchesTransformers() throws {
        let ids = try reference.int32s("batch.input_ids"), mask = try reference.int32s("batch.attention_mask")
        let b = Self.inputs.count, s = ids.count / b
        // Through BLAS, and through weights packed for inference (a model of its own: the
        // embedder's is shared with the other tests).
        let packedModel = try BertModel(folder: ModelFixtures.miniLMFolder)
        packedModel.prepareForInference(always: true)
        for model in [embedder.model, packedModel] {
            let out = try model.forward(
                EncoderBatch(batchSize: b, sequenceLength: s, inputIds: ids, attentionMask: mask))
            #expect(maxAbsDiff(out.poolerOutput!, try reference.floats("batch.pooler")) <= 1e-4)
            var worst: Float = 0
            for i in 0..<b {
                let single = try reference.floats("hidden.\(i)")
                let len = single.count / 384
                worst = max(worst, maxAbsDiff(out.lastHiddenState[(i * s * 384)..<((i * s + len) * 384)], single))
            }
            #expect(worst <= 1e-4, "batched last hidden state (packed: \(model === packedModel)): max |diff| \(worst)")
        }
    }

    @Test func sentenceEmbeddingsMatchSentenceTransformers() throws {
        let batched = try embedder.embed(Self.inputs, batchSize: 7)
        let whole = try reference.floats("batch.embedding")
        var worst: Float = 0
        for (i, text) in Self.inputs.enumerated() {
            let single = try embedder.embed([text])[0]
            let ref = try reference.floats("embedding.\(i)")
            worst = max(
                worst, maxAbsDiff(single, ref), maxAbsDiff(batched[i], ref),
                maxAbsDiff(batched[i], whole[(i * 384)..<((i + 1) * 384)]))
        }
        #expect(worst <= 1e-5, "normalised embeddings: max |diff| \(worst)")
    }
}
