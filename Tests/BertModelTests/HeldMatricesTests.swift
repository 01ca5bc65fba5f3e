import Bert
import BertCompute
import Foundation
import Testing

/// A quantized folder's matrices stay in int8 or bf16 once loaded: the inference copies are made
/// from the stored values, the word embeddings are gathered from them, and the results are the
/// same bits as the same model with every matrix widened to floats first.
@Suite(.serialized, .enabled(if: ModelFixtures.required || ModelFixtures.haveMiniLM))
struct HeldMatricesTests {
    /// all-MiniLM-L6-v2's config.json and its weights written by `ModelWeights.writeQuantized`.
    func quantizedFolder(_ precision: StoredPrecision) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("held-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: ModelFixtures.miniLMFolder.appendingPathComponent("config.json"),
            to: folder.appendingPathComponent("config.json"))
        try ModelWeights.writeQuantized(
            try ModelWeights.open(in: ModelFixtures.miniLMFolder), precision: precision,
            to: folder.appendingPathComponent("model.safetensors"))
        return folder
    }

    /// Two sequences of real vocabulary ids, one padded.
    func batch() -> EncoderBatch {
        var ids = (0..<80).map { Int32(1000 + ($0 * 7919) % 28000) }
        ids[0] = 101
        ids[40] = 101
        var mask = [Int32](repeating: 1, count: 80)
        for i in 70..<80 { mask[i] = 0 }
        return EncoderBatch(batchSize: 2, sequenceLength: 40, inputIds: ids, attentionMask: mask)
    }

    func bits(_ model: BertModel) throws -> [UInt32] {
        try model.forward(batch()).lastHiddenState.map(\.bitPattern)
    }

    @Test(arguments: [StoredPrecision.int8, .bf16])
    func aQuantizedFolderRunsFromItsStoredValues(stored: StoredPrecision) throws {
        let folder = try quantizedFolder(stored)
        defer { try? FileManager.default.removeItem(at: folder) }
        let precision: Precision = stored == .int8 ? .int8 : .bf16
        let fp32 = try BertModel(folder: ModelFixtures.miniLMFolder)
        fp32.prepareForInference(always: true)
        let fp32Bytes = fp32.weightBytes
        // The FP32 model holds its floats and the packed copies of its Linear weights.
        #expect(Double(fp32Bytes) > 1.4 * Double(4 * fp32.parameterCount), "\(fp32Bytes)")

        let held = try BertModel(folder: folder)
        #expect(held.parameters.holdsLowPrecision)
        held.prepareForInference(precision: precision)
        let heldBits = try bits(held)
        let heldBytes = held.weightBytes
        // The same model with every matrix widened first (what loading did before): the same bits.
        let widened = try BertModel(folder: folder)
        _ = widened.parameters.data
        widened.prepareForInference(precision: precision)
        #expect(try bits(widened) == heldBits)
        let widenedBytes = widened.weightBytes

        // A quarter or a half of the FP32 checkpoint's parameters, a fifth or a third of the FP32
        // model prepared for inference; the forward widened only the position embeddings.
        let quarter = Double(heldBytes) / Double(4 * fp32.parameterCount)
        #expect(quarter < (stored == .int8 ? 0.27 : 0.52) && quarter > (stored == .int8 ? 0.2 : 0.45), "\(quarter)")
        #expect(Double(heldBytes) / Double(fp32Bytes) < (stored == .int8 ? 0.2 : 0.36), "\(heldBytes) \(fp32Bytes)")
        #expect(held.weightBytes == heldBytes)
        #expect(Double(widenedBytes) > 1.1 * Double(4 * fp32.parameterCount), "\(widenedBytes)")

        // fp32 on the same held model: the Linear weights are widened (the packed float kernel
        // reads them), the word embeddings stay held, and the answer equals the widened model's.
        let widenedFP32 = try BertModel(folder: folder)
        _ = widenedFP32.parameters.data
        widenedFP32.prepareForInference(always: true)
        held.prepareForInference(always: true)
        #expect(try bits(held) == bits(widenedFP32))
        let words = 30522 * 384
        #expect(held.weightBytes <= widenedFP32.weightBytes - 2 * words, "\(held.weightBytes)")

        // Reading a held matrix gives its stored values: int8 × scale, or the bf16 value.
        let file = try ModelWeights.open(in: folder)
        let name = "encoder.layer.2.attention.self.key.weight"
        let t = try #require(held.parameters.layout.tensor(named: name))
        #expect(held.parameters.values(t) == (try file.floats(name)))
        let wordTable = held.embeddings.wordEmbeddings
        #expect(held.parameters.values(wordTable) == (try file.floats(wordTable.name)))
        // Back in the low precision, the widened matrices are quantized again to the same values.
        held.prepareForInference(precision: precision)
        #expect(try bits(held) == heldBits)
    }

    @Test func heldInt8ValuesSurviveTheInferenceCopy() throws {
        // After the int8 copy replaced the stored values, widening reads them back from the copy.
        let folder = try quantizedFolder(.int8)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try BertModel(folder: folder)
        model.prepareForInference(precision: .int8)
        _ = try model.forward(batch())
        let file = try ModelWeights.open(in: folder)
        for name in [
            "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.value.weight",
            "encoder.layer.5.output.dense.weight", "encoder.layer.4.intermediate.dense.weight",
        ] {
            let t = try #require(model.parameters.layout.tensor(named: name))
            #expect(model.parameters.values(t) == (try file.floats(name)), "\(name)")
        }
        // The whole block (what training and saving read) is every stored value, widened.
        let all = model.parameters.data
        let pooler = try #require(model.parameters.layout.tensor(named: "pooler.dense.weight"))
        let values = Array(UnsafeBufferPointer(start: all.pointer + pooler.offset, count: pooler.count))
        #expect(values == (try file.floats("pooler.dense.weight")))
        #expect(model.weightBytes >= 4 * model.parameterCount)
    }

    @Test func loadingFloatsOverHeldMatricesReplacesThem() throws {
        // A store that holds int8 matrices, loaded again from the FP32 file: the new floats win.
        let folder = try quantizedFolder(.int8)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = try BertModel(folder: folder)
        let original = try ModelWeights.open(in: ModelFixtures.miniLMFolder)
        try model.parameters.load(from: original)
        for name in ["encoder.layer.1.attention.self.query.weight", "embeddings.word_embeddings.weight"] {
            let t = try #require(model.parameters.layout.tensor(named: name))
            #expect(model.parameters.values(t) == (try original.floats(name)), "\(name)")
        }
        let fp32 = try BertModel(folder: ModelFixtures.miniLMFolder)
        #expect(try bits(model) == bits(fp32))
    }

    @Test func badBF16ValuesAreRefusedWhenLoaded() throws {
        let folder = try quantizedFolder(.bf16)
        defer { try? FileManager.default.removeItem(at: folder) }
        // A NaN in a BF16 matrix (0x7FC0): refused at load, as a float NaN is.
        let url = folder.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(contentsOf: url)
        var writer = SafeTensorsWriter()
        for t in file.tensors {
            var bytes = try file.withBytes(t.name) { Array($0) }
            if t.name == "encoder.layer.1.output.dense.weight" {
                bytes[100] = 0xC0
                bytes[101] = 0x7F
            }
            bytes.withUnsafeBytes { writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: $0) }
        }
        try writer.write(to: url)
        #expect {
            _ = try BertModel(folder: folder)
        } throws: { "\($0)".contains("encoder.layer.1.output.dense.weight") && "\($0)".contains("NaN") }
    }
}
