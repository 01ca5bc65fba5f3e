import Bert
import BertCompute
import Foundation
import Testing

/// A tiny random BERT saved by transformers (every bias and LayerNorm perturbed, an intermediate
/// size of 37 that is no multiple of 16, 4 heads) against transformers' own outputs.
@Suite struct TinyModelTests {
    let reference: SafeTensorsFile
    let batch: EncoderBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_reference.safetensors")
        let ids = try reference.int32s("input_ids")
        batch = EncoderBatch(
            batchSize: 3, sequenceLength: 11, inputIds: ids,
            tokenTypeIds: try reference.int32s("token_type_ids"),
            attentionMask: try reference.int32s("attention_mask"))
    }

    /// Compares our [B, S, H] output with the reference on the positions the mask keeps.
    func compareMasked(_ ours: [Float], _ name: String, mask: [Int32], hidden: Int, tolerance: Float = 1e-5) throws {
        let ref = try reference.floats(name)
        #expect(ref.count == ours.count, "\(name): \(ours.count) values vs \(ref.count)")
        var worst: Float = 0
        for (i, m) in mask.enumerated() where m != 0 {
            worst = max(
                worst, maxAbsDiff(ours[(i * hidden)..<((i + 1) * hidden)], ref[(i * hidden)..<((i + 1) * hidden)]))
        }
        #expect(worst <= tolerance, "\(name): max |diff| \(worst)")
    }

    @Test func float32CheckpointWithBertPrefixMatchesTransformers() throws {
        let model = try BertModel(folder: ModelFixtures.url("tiny-pretraining"))
        #expect(model.config.hiddenSize == 32 && model.config.intermediateSize == 37)
        #expect(model.pooler != nil)
        let out = try model.forward(batch, outputHiddenStates: true)
        #expect(out.hiddenStates.count == 3)
        let mask = batch.attentionMask!
        for k in 0..<3 {
            try compareMasked(out.hiddenStates[k], "f32.hidden.\(k)", mask: mask, hidden: 32)
        }
        try compareMasked(out.lastHiddenState, "f32.hidden.2", mask: mask, hidden: 32)
        #expect(maxAbsDiff(out.poolerOutput!, try reference.floats("f32.pooler")) <= 1e-5)
        // Padded positions are zero, never stale values.
        for (i, m) in mask.enumerated() where m == 0 {
            #expect(out.lastHiddenState[(i * 32)..<((i + 1) * 32)].allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: ["f16", "bf16"])
    func halfPrecisionCheckpointsLoadAsFloat32(_ dtype: String) throws {
        let model = try BertModel(folder: ModelFixtures.url("tiny-\(dtype)"))
        let out = try model.forward(batch, outputHiddenStates: true)
        try compareMasked(out.lastHiddenState, "\(dtype).hidden.2", mask: batch.attentionMask!, hidden: 32)
        #expect(maxAbsDiff(out.poolerOutput!, try reference.floats("\(dtype).pooler")) <= 1e-5)
    }

    @Test func tanhApproximatedGeluMatchesTransformers() throws {
        let model = try BertModel(folder: ModelFixtures.url("tiny-gelu-tanh"))
        #expect(model.config.activation == .geluTanh)
        let out = try model.forward(batch)
        try compareMasked(out.lastHiddenState, "tanh.hidden.2", mask: batch.attentionMask!, hidden: 32)
        #expect(maxAbsDiff(out.poolerOutput!, try reference.floats("tanh.pooler")) <= 1e-5)
    }

    @Test func leftPaddingKeepsTransformersPositions() throws {
        let model = try BertModel(folder: ModelFixtures.url("tiny-pretraining"))
        let left = EncoderBatch(
            batchSize: 1, sequenceLength: 11, inputIds: try reference.int32s("leftpad.input_ids"),
            attentionMask: try reference.int32s("leftpad.attention_mask"))
        let out = try model.forward(left)
        let ref = try reference.floats("leftpad.hidden.2")
        let mask = left.attentionMask!
        var worst: Float = 0
        for (i, m) in mask.enumerated() where m != 0 {
            worst = max(
                worst, maxAbsDiff(out.lastHiddenState[(i * 32)..<((i + 1) * 32)], ref[(i * 32)..<((i + 1) * 32)]))
        }
        #expect(worst <= 1e-5)
    }

    @Test func eachSequenceAloneEqualsTheBatch() throws {
        let model = try BertModel(folder: ModelFixtures.url("tiny-pretraining"))
        let full = try model.forward(batch)
        let mask = batch.attentionMask!, ids = batch.inputIds, types = batch.tokenTypeIds!
        for b in 0..<3 {
            let len = (0..<11).filter { mask[b * 11 + $0] != 0 }.count
            let one = EncoderBatch(
                batchSize: 1, sequenceLength: len, inputIds: Array(ids[(b * 11)..<(b * 11 + len)]),
                tokenTypeIds: Array(types[(b * 11)..<(b * 11 + len)]))
            let out = try model.forward(one)
            #expect(
                maxAbsDiff(out.lastHiddenState, full.lastHiddenState[(b * 11 * 32)..<((b * 11 + len) * 32)]) <= 1e-5)
        }
    }
}
