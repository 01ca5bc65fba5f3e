import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// The feature-based use: chosen layers' hidden states, combined, equal transformers' hidden_states
/// (Fixtures/minilm_reference.safetensors) and written by `bert features`.
@Suite(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs all-MiniLM-L6-v2"))
struct FeaturesTests {
    @Test func lastFourLayersConcatenatedSummedAndAveraged() throws {
        let reference = try ModelFixtures.reference("minilm_reference.safetensors")
        let text = MiniLMParityTests.inputs[0]
        let extractor = FeatureExtractor(
            model: try BertModel(folder: ModelFixtures.miniLMFolder),
            tokenizer: try BertTokenizer(modelFolder: ModelFixtures.miniLMFolder))
        let layers = try (3...6).map { try reference.floats("layers.\($0).0") }
        let h = 384, n = layers[0].count / h
        let (e, concat) = try extractor.features(text, layers: [-1, -2, -3, -4], combine: .concat)
        #expect(e.count == n && concat.count == n * 4 * h)
        var worst: Float = 0
        for t in 0..<n {
            for (j, k) in [3, 2, 1, 0].enumerated() {  // -1 is layer 6, ..., -4 is layer 3
                for c in 0..<h { worst = max(worst, abs(concat[t * 4 * h + j * h + c] - layers[k][t * h + c])) }
            }
        }
        #expect(worst <= 1e-4)
        let (_, sum) = try extractor.features(text, layers: [-1, -2, -3, -4], combine: .sum)
        let (_, mean) = try extractor.features(text, layers: [-1, -2, -3, -4], combine: .mean)
        var worstSum: Float = 0, worstMean: Float = 0
        for i in 0..<(n * h) {
            let s = layers.reduce(Float(0)) { $0 + $1[i] }
            worstSum = max(worstSum, abs(sum[i] - s))
            worstMean = max(worstMean, abs(mean[i] - s / 4))
        }
        #expect(worstSum <= 4e-4 && worstMean <= 1e-4)
        let (_, embeddings) = try extractor.features(text, layers: [0], combine: .sum)
        #expect(maxAbsDiff(embeddings, try reference.floats("layers.0.0")) <= 1e-4)
        #expect(throws: BertError.self) { _ = try extractor.resolve([7]) }
        #expect(throws: BertError.self) { _ = try extractor.resolve([-8]) }
    }

    @Test func theCommandWritesSafetensorsAUserCanSlice() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(
            "features-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try runBertCLI(
            ["features", "--model", ModelFixtures.miniLMFolder.path, "--words", "--combine", "sum", "--out", out.path],
            stdin: Data("Hello world, again.\nUnbelievable!\n".utf8))
        #expect(r.status == 0, "\(r.stderr)")
        let file = try SafeTensorsFile(contentsOf: out)
        #expect(try file.int32s("line_starts") == [0, 5, 7])  // hello world , again . | unbelievable !
        #expect(file.info("features")?.shape == [7, 384])
        #expect(try file.int32s("offsets") == [0, 5, 6, 11, 11, 12, 13, 18, 18, 19, 0, 12, 12, 13])
        #expect(try file.int32s("token_ids").count == 7)
        let bad = try runBertCLI(
            ["features", "--model", ModelFixtures.miniLMFolder.path, "--layers", "9"], stdin: Data("x\n".utf8))
        #expect(bad.status != 0 && !bad.crashed && bad.stderr.contains("layer 9"), "\(bad.stderr)")
    }
}
