import Bert
import BertCompute
import Foundation
import Testing

/// `bert quantize`: the folder it writes is a quarter (int8) or half (bf16) of the FP32 file, loads
/// in every reader, keeps the embeddings close, and its stored values are the ones the int8 and
/// bf16 products use.
@Suite(.serialized, .enabled(if: ModelFixtures.required || ModelFixtures.haveMiniLM))
struct QuantizedFolderTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("quantize-\(UUID().uuidString)")

    func quantize(_ precision: String, extra: [String] = []) throws -> URL {
        let out = root.appendingPathComponent(precision)
        let r = try runBertCLI(
            ["quantize", "--model", ModelFixtures.miniLMFolder.path, "--out", out.path, "--precision", precision]
                + extra)
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        #expect(r.stdout.contains("wrote"), "\(r.stdout)")
        return out
    }

    func size(_ folder: URL) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("model.safetensors").path)[
            .size] as! Int
    }

    func sentences() throws -> [String] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("minilm_inputs.json"))) as! [String]
            + ["Rain.", "Ein Mann spielt Gitarre, und das Publikum hört zu."]
    }

    func cosines(_ a: [[Float]], _ b: [[Float]]) -> [Double] {
        zip(a, b).map { x, y in Double(zip(x, y).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
    }

    @Test func int8FolderIsAQuarterAndKeepsTheEmbeddings() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try quantize("int8")
        let ratio = Double(try size(folder)) / Double(try size(ModelFixtures.miniLMFolder))
        #expect(ratio < 0.27, "\(ratio)")
        // The other files came along: the folder is a sentence-transformers folder as before.
        for name in ["config.json", "tokenizer.json", "modules.json"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path))
        }
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(file.metadata["swift_bert_quantization"]?.hasPrefix("int8") == true)
        // The stored values are the int8 products' own quantization of the FP32 weights.
        let original = try SafeTensorsFile(
            contentsOf: ModelFixtures.miniLMFolder.appendingPathComponent("model.safetensors"))
        let name = "encoder.layer.3.intermediate.dense.weight"
        let w = try original.floats(name)
        let shape = try #require(original.info(name)).shape
        let (q, scales) = w.withUnsafeBufferPointer { Int8Weights.quantize($0.baseAddress!, n: shape[0], k: shape[1]) }
        #expect(try file.int64s(name) == q.map(Int64.init))
        #expect(try file.floats(name + "_scale") == scales)
        #expect(file.info(name)?.dtype == .I8 && file.info("encoder.layer.3.intermediate.dense.bias")?.dtype == .F32)
        // Re-quantizing what a reader gets back gives the same int8 values.
        let back = try file.floats(name)
        let (again, _) = back.withUnsafeBufferPointer {
            Int8Weights.quantize($0.baseAddress!, n: shape[0], k: shape[1])
        }
        #expect(again == q)

        let texts = try sentences()
        let reference = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder).embed(texts)
        for precision in [Precision.fp32, .int8] {
            let c = cosines(reference, try SentenceEmbedder(folder: folder, precision: precision).embed(texts))
            #expect(c.min()! >= 0.995, "\(precision): \(c)")
            #expect(c.contains { $0 < 0.999_999_9 })
        }
        // bert params counts the matrices, not their scales.
        let p = try runBertCLI(["params", "--model", folder.path])
        #expect(p.status == 0 && !p.stderr.contains("warning"), "\(p.stderr)")
        let q0 = try runBertCLI(["params", "--model", ModelFixtures.miniLMFolder.path])
        #expect(p.stdout.split(separator: "\n").last == q0.stdout.split(separator: "\n").last, "\(p.stdout)")
    }

    @Test func bf16FolderIsAHalfAndKeepsTheEmbeddings() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try quantize("bf16")
        let ratio = Double(try size(folder)) / Double(try size(ModelFixtures.miniLMFolder))
        #expect(ratio < 0.52 && ratio > 0.45, "\(ratio)")
        let texts = try sentences()
        // bf16 products round the Linear weights as the file stores them; only the embeddings'
        // rounding (float in the bf16 path, BF16 in the file) sets the two apart.
        let a = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, precision: .bf16).embed(texts)
        let b = try SentenceEmbedder(folder: folder, precision: .bf16).embed(texts)
        let same = cosines(a, b)
        #expect(same.min()! >= 0.9999, "\(same)")
        let file = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        #expect(file.info("encoder.layer.0.attention.self.query.weight")?.dtype == .BF16)
        #expect(file.info("embeddings.LayerNorm.weight")?.dtype == .F32)
        let reference = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder).embed(texts)
        let c = cosines(reference, try SentenceEmbedder(folder: folder).embed(texts))
        #expect(c.min()! >= 0.9995, "\(c)")
    }

    @Test func badQuantizedFilesAndArgumentsAreClearErrors() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        func load(_ build: (inout SafeTensorsWriter) -> Void) throws -> String {
            var w = SafeTensorsWriter()
            build(&w)
            let url = root.appendingPathComponent("bad-\(UUID().uuidString).safetensors")
            try w.write(to: url)
            let file = try SafeTensorsFile(contentsOf: url)
            do {
                _ = try file.floats("m.weight")
                return ""
            } catch { return "\(error)" }
        }
        let q: [Int8] = [1, -2, 3, 4, 5, -6]
        let noScale = try load { w in q.withUnsafeBytes { w.add("m.weight", dtype: .I8, shape: [2, 3], bytes: $0) } }
        #expect(noScale.contains("I8"), "\(noScale)")
        let wrongCount = try load { w in
            q.withUnsafeBytes { w.add("m.weight", dtype: .I8, shape: [2, 3], bytes: $0) }
            [Float(1), 2, 3].withUnsafeBufferPointer { w.add("m.weight_scale", shape: [3], floats: $0) }
        }
        #expect(wrongCount.contains("one per row"), "\(wrongCount)")
        let nanScale = try load { w in
            q.withUnsafeBytes { w.add("m.weight", dtype: .I8, shape: [2, 3], bytes: $0) }
            [Float(1), .nan].withUnsafeBufferPointer { w.add("m.weight_scale", shape: [2], floats: $0) }
        }
        #expect(nanScale.contains("non-finite"), "\(nanScale)")
        let good = try load { w in
            q.withUnsafeBytes { w.add("m.weight", dtype: .I8, shape: [2, 3], bytes: $0) }
            [Float(0.5), 2].withUnsafeBufferPointer { w.add("m.weight_scale", shape: [2], floats: $0) }
        }
        #expect(good.isEmpty, "\(good)")

        // The CLI: an unknown precision, and an output that holds something.
        let bad = try runBertCLI([
            "quantize", "--model", ModelFixtures.miniLMFolder.path, "--out", root.appendingPathComponent("x").path,
            "--precision", "int4",
        ])
        #expect(bad.status != 0 && !bad.crashed && bad.stderr.contains("int8"), "\(bad.stderr)")
        let taken = root.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: taken, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: taken.appendingPathComponent("notes.txt"))
        let refused = try runBertCLI([
            "quantize", "--model", ModelFixtures.miniLMFolder.path, "--out", taken.path, "--precision", "int8",
        ])
        #expect(refused.status != 0 && !refused.crashed, "\(refused.stderr)")
        #expect(try String(contentsOf: taken.appendingPathComponent("notes.txt"), encoding: .utf8) == "mine")
    }
}
