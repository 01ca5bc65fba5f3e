import Bert
import BertCompute
import Foundation
import Testing

/// Checkpoints cross the boundary both ways: a model written by us loads in transformers with the
/// same outputs (Fixtures/ours-tiny + ours_tiny_reference.safetensors, made by
/// scripts/make_interop_reference.py), and transformers' checkpoints load here (TinyModelTests).
@Suite struct InteropTests {
    static let tinyConfig: BertConfig = {
        var c = BertConfig()
        c.vocabSize = 99
        c.hiddenSize = 32
        c.numHiddenLayers = 2
        c.numAttentionHeads = 4
        c.intermediateSize = 37
        c.maxPositionEmbeddings = 40
        c.initializerRange = 0.2
        return c
    }()

    func temporaryFolder() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("interop-\(UUID().uuidString)")
    }

    @Test func ourWriterStillProducesTheFileTransformersLoaded() throws {
        let model = try BertModel(config: Self.tinyConfig)
        model.initializeWeights(seed: 11)
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.save(to: folder)
        let ours = try Data(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let committed = try Data(contentsOf: ModelFixtures.url("ours-tiny/model.safetensors"))
        // The same seed must write the same bytes; if the format changed on purpose, regenerate
        // with scripts/make_interop_reference.py.
        #expect(ours == committed, "the same seed must write the same bytes")
    }

    @Test func transformersGivesOurOutputsOnOurCheckpoint() throws {
        let reference = try ModelFixtures.reference("ours_tiny_reference.safetensors")
        let model = try BertModel(folder: ModelFixtures.url("ours-tiny"))
        let batch = EncoderBatch(
            batchSize: 2, sequenceLength: 9, inputIds: try reference.int32s("input_ids"),
            tokenTypeIds: try reference.int32s("token_type_ids"),
            attentionMask: try reference.int32s("attention_mask"))
        let out = try model.forward(batch)
        let ref = try reference.floats("last_hidden_state")
        var worst: Float = 0
        for (i, m) in batch.attentionMask!.enumerated() where m != 0 {
            worst = max(
                worst, maxAbsDiff(out.lastHiddenState[(i * 32)..<((i + 1) * 32)], ref[(i * 32)..<((i + 1) * 32)]))
        }
        #expect(worst <= 1e-5, "last hidden state: max |diff| \(worst)")
        #expect(maxAbsDiff(out.poolerOutput!, try reference.floats("pooler_output")) <= 1e-5)
    }

    @Test func transformersCheckpointSavedByUsKeepsEveryValue() throws {
        // tiny-pretraining has `bert.`-prefixed names and heads; we save a plain BertModel.
        let loaded = try BertModel(folder: ModelFixtures.url("tiny-pretraining"))
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try loaded.save(to: folder)
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(file.info("embeddings.word_embeddings.weight")?.shape == [99, 32])
        #expect(file.info("bert.embeddings.word_embeddings.weight") == nil)
        #expect(file.metadata["format"] == "pt")
        let again = try BertModel(folder: folder)
        #expect(again.parameters.data.toArray() == loaded.parameters.data.toArray())
        #expect(
            again.config
                == {
                    var c = loaded.config; c.architectures = ["BertModel"]; return c
                }())
        let original = try SafeTensorsFile(contentsOf: ModelFixtures.url("tiny-pretraining/model.safetensors"))
        for t in again.parameters.layout.tensors {
            #expect(try original.floats("bert." + t.name) == again.parameters.values(t), "\(t.name)")
        }
    }
}
