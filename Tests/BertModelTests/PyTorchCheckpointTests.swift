import Bert
import BertCompute
import Foundation
import Testing

/// pytorch_model.bin and sharded checkpoints, read without Python: files written by torch.save
/// itself (Fixtures/pytorch, made by scripts/make_pytorch_fixtures.py from the safetensors
/// fixtures), compared with the safetensors folders they came from.
@Suite struct PyTorchCheckpointTests {
    static func pytorch(_ name: String) -> URL { ModelFixtures.url("pytorch").appendingPathComponent(name) }

    static func values(_ store: ParameterStore) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for t in store.layout.tensors { out[t.name] = Array(UnsafeBufferPointer(start: store[t], count: t.count)) }
        return out
    }

    /// Every parameter bit for bit, and the loss of the reference batch as transformers computed it.
    @Test(arguments: ["tiny-pretraining-bin", "tiny-sharded-bin", "tiny-sharded-safetensors"])
    func pretrainingModelLoadsAsFromSafetensors(_ folder: String) throws {
        let want = try BertForPreTraining(folder: ModelFixtures.url("tiny-pretraining"))
        let got = try BertForPreTraining(folder: Self.pytorch(folder))
        let a = Self.values(want.parameters), b = Self.values(got.parameters)
        #expect(a.count == b.count && !a.isEmpty)
        for (name, v) in a { #expect(b[name] == v, "\(folder): \(name)") }

        let reference = try ModelFixtures.reference("tiny_pretraining_steps.safetensors")
        let inputs = try ModelFixtures.reference("tiny_reference.safetensors")
        let batch = PretrainingBatch(
            inputs: EncoderBatch(
                batchSize: 3, sequenceLength: 11, inputIds: try inputs.int32s("input_ids"),
                tokenTypeIds: try inputs.int32s("token_type_ids"), attentionMask: try inputs.int32s("attention_mask")),
            mlmLabels: try reference.int32s("mlm_labels"), nspLabels: try reference.int32s("nsp_labels"))
        let loss = try got.lossAndGradients(batch, into: try got.makeGradients())
        #expect(abs(loss.total - Double(try reference.floats("loss0")[0])) <= 1e-5)
    }

    /// F16 and BF16 storages: the same values as the half-precision safetensors fixtures, whose
    /// outputs are checked against transformers elsewhere.
    @Test(arguments: ["f16", "bf16"])
    func halfPrecisionStorages(_ tag: String) throws {
        let bin = try ModelWeights.open(in: Self.pytorch("tiny-\(tag)-bin"))
        let safetensors = try ModelWeights.open(in: ModelFixtures.url("tiny-\(tag)"))
        #expect(bin.tensors.allSatisfy { $0.dtype == (tag == "f16" ? .F16 : .BF16) })
        for t in safetensors.tensors {
            #expect(bin.info(t.name)?.shape == t.shape, "\(t.name)")
            #expect(try bin.floats(t.name) == safetensors.floats(t.name), "\(t.name)")
        }
        let a = try BertModel(folder: ModelFixtures.url("tiny-\(tag)")),
            b = try BertModel(folder: Self.pytorch("tiny-\(tag)-bin"))
        let batch = EncoderBatch(batchSize: 1, sequenceLength: 4, inputIds: [2, 17, 40, 3])
        #expect(try a.forward(batch).lastHiddenState == b.forward(batch).lastHiddenState)
    }

    /// Dtypes, a slice at a storage offset, a scalar, an empty tensor, a Parameter, bools.
    @Test func everyKindOfEntry() throws {
        let file = try ModelWeights.open(Self.pytorch("mixed.bin"))
        let reference = try SafeTensorsFile(contentsOf: Self.pytorch("mixed_reference.safetensors"))
        #expect(Set(file.tensors.map(\.name)) == Set(reference.tensors.map(\.name)))
        for name in ["f32", "slice", "scalar", "empty", "param", "f16"] {
            #expect(file.info(name)?.shape == reference.info(name)?.shape, "\(name)")
            #expect(try file.floats(name) == reference.floats(name), "\(name)")
        }
        #expect(file.info("f16")?.dtype == .F16)
        #expect(try file.int64s("i64") == [-3, -2, -1, 0, 1, 2, 3])
        #expect(file.info("bool")?.dtype == .BOOL)
        #expect(try file.withBytes("bool") { Array($0) } == [1, 0, 1, 1])
    }

    @Test func refusalsSayWhy() throws {
        func error(_ name: String) -> BertError? {
            do {
                _ = try ModelWeights.open(Self.pytorch(name))
                return nil
            } catch { return error as? BertError }
        }
        #expect(
            error("unsafe-os-system.bin")
                == .unsafePickle(path: Self.pytorch("unsafe-os-system.bin").path, global: "posix.system"))
        #expect(
            error("unsafe-eval.bin")
                == .unsafePickle(path: Self.pytorch("unsafe-eval.bin").path, global: "__builtin__.eval"))
        guard case .malformedFile(_, let strided) = error("strided.bin") else {
            Issue.record("a strided view was read")
            return
        }
        #expect(strided.contains("strided view"))
        guard case .malformedFile(_, let legacy) = error("legacy.bin") else {
            Issue.record("the legacy format was read")
            return
        }
        #expect(legacy.contains("before PyTorch 1.6"))
    }

    /// A shard index naming a file outside its folder, or a tensor its shard lacks, is refused.
    @Test func shardIndexIsChecked() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("shards-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.copyItem(at: Self.pytorch("tiny-sharded-bin"), to: root)
        let index = root.appendingPathComponent("pytorch_model.bin.index.json")
        let original = try Data(contentsOf: index)
        var object = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        var map = object["weight_map"] as! [String: String]
        map["bert.pooler.dense.bias"] = "../escape.bin"
        object["weight_map"] = map
        try JSONSerialization.data(withJSONObject: object).write(to: index)
        #expect(throws: BertError.self) { _ = try ModelWeights.open(in: root) }
        map["bert.pooler.dense.bias"] = "pytorch_model-00001-of-00003.bin"
        map["no.such.tensor"] = "pytorch_model-00001-of-00003.bin"
        object["weight_map"] = map
        try JSONSerialization.data(withJSONObject: object).write(to: index)
        #expect(throws: BertError.self) { _ = try ModelWeights.open(in: root) }
    }

    /// `bert convert`: the folder's files and one model.safetensors whose tensors are the
    /// checkpoint's, in their dtypes; the output is not replaced without --overwrite.
    @Test func convertRoundTrips() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("convert-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for source in ["tiny-pretraining-bin", "tiny-bf16-bin", "tiny-sharded-bin"] {
            let out = root.appendingPathComponent(source)
            let r = try runBertCLI(["convert", "--model", Self.pytorch(source).path, "--out", out.path])
            #expect(r.status == 0, "\(r.stderr)")
            let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
            #expect(names == ["config.json", "model.safetensors"])
            let from = try ModelWeights.open(in: Self.pytorch(source)),
                to = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
            #expect(Set(from.tensors.map(\.name)) == Set(to.tensors.map(\.name)))
            for t in from.tensors {
                #expect(to.info(t.name)?.dtype == t.dtype && to.info(t.name)?.shape == t.shape, "\(t.name)")
                #expect(try to.withBytes(t.name) { Array($0) } == from.withBytes(t.name) { Array($0) }, "\(t.name)")
            }
            let again = try runBertCLI(["convert", "--model", Self.pytorch(source).path, "--out", out.path])
            #expect(again.status == 1 && again.stderr.contains("--overwrite"), "\(again.stderr)")
        }
        let missing = try runBertCLI([
            "convert", "--model", root.appendingPathComponent("nothing").path, "--out",
            root.appendingPathComponent("x").path,
        ])
        #expect(missing.status == 1 && !missing.crashed)
    }
}

/// A zip archive of stored members (no CRCs: the reader does not check them), to put hand-made
/// pickles where torch puts data.pkl.
func storedZip(_ members: [(String, [UInt8])]) -> Data {
    var out: [UInt8] = [], directory: [UInt8] = []
    func u16(_ v: Int, _ a: inout [UInt8]) { a += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func u32(_ v: Int, _ a: inout [UInt8]) { for k in 0..<4 { a.append(UInt8(v >> (8 * k) & 0xFF)) } }
    for (name, bytes) in members {
        let offset = out.count, n = Array(name.utf8)
        u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u32(0, &out); u32(0, &out)
        u32(bytes.count, &out); u32(bytes.count, &out); u16(n.count, &out); u16(0, &out)
        out += n + bytes
        u32(0x0201_4B50, &directory); u16(20, &directory); u16(20, &directory); u16(0, &directory)
        u16(0, &directory); u32(0, &directory); u32(0, &directory); u32(bytes.count, &directory)
        u32(bytes.count, &directory); u16(n.count, &directory); u16(0, &directory); u16(0, &directory)
        u16(0, &directory); u16(0, &directory); u32(0, &directory); u32(offset, &directory)
        directory += n
    }
    let start = out.count
    out += directory
    u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(members.count, &out); u16(members.count, &out)
    u32(directory.count, &out); u32(start, &out); u16(0, &out)
    return Data(out)
}

@Suite struct HostilePickleTests {
    func open(_ pickle: [UInt8]) -> Error? {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            try storedZip([("archive/data.pkl", pickle)]).write(to: url)
            _ = try ModelWeights.open(url)
            return nil
        } catch { return error }
    }

    /// Values nested 200,000 deep would be freed by recursion 200,000 deep (a stack overflow):
    /// tuples past 32 deep are refused, and nested lists and dicts are emptied before being freed.
    @Test func deepNestingEndsInAnError() {
        let tuples: [UInt8] = [0x80, 0x02, UInt8(ascii: ")")] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E]
        #expect(open(tuples) is BertError)
        // [[[...]]]: each new list is memoized, appended to the one before, and fetched again.
        var lists: [UInt8] = [0x80, 0x02, UInt8(ascii: "]"), 0x94]
        for k in 0..<100_000 {
            lists += [UInt8(ascii: "j")] + withUnsafeBytes(of: UInt32(k).littleEndian, Array.init)
            lists += [UInt8(ascii: "]"), 0x94, UInt8(ascii: "a")]
        }
        lists += [0x2E]
        #expect(open(lists) is BertError)
        // The same with dicts (a state dict's _metadata nests dicts, so they cannot be refused).
        var dicts: [UInt8] = [0x80, 0x02, UInt8(ascii: "}"), 0x94]
        for k in 0..<100_000 {
            dicts += [UInt8(ascii: "j")] + withUnsafeBytes(of: UInt32(k).littleEndian, Array.init)
            dicts += [UInt8(ascii: "K"), 1, UInt8(ascii: "}"), 0x94, UInt8(ascii: "s")]
        }
        dicts += [0x2E]
        #expect(open(dicts) is BertError)
    }

    /// Offsets of Int.max in zip64 records (a locator, a local header offset) are refused (a bound
    /// computed as offset + size would overflow and trap).
    @Test func zipOffsetsPastTheFileAreRefused() throws {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
        func u64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(v >> (8 * $0) & 0xFF) } }
        let huge = Int.max
        let head: [UInt8] = u32(0x0403_4B50) + [UInt8](repeating: 0, count: 26)
        let eocd = u32(0x0605_4B50) + u16(0) + u16(0) + u16(1) + u16(1)
        // A zip64 locator pointing at Int.max - 7.
        let locator = u32(0x0706_4B50) + u32(0) + u64(huge) + u32(1)
        let viaLocator = head + locator + eocd + u32(0) + u32(0) + u16(0)
        // A central entry whose local header offset is in its zip64 extra field.
        let name = Array("archive/data.pkl".utf8)
        let entry =
            u32(0x0201_4B50) + u16(45) + u16(45) + u16(0) + u16(0) + u32(0) + u32(0) + u32(0) + u32(0)
            + u16(name.count) + u16(12) + u16(0) + u16(0) + u16(0) + u32(0) + u32(0xFFFF_FFFF) + name
            + u16(1) + u16(8) + u64(huge)
        let viaExtra = head + entry + eocd + u32(entry.count) + u32(head.count) + u16(0)
        for (what, bytes) in [("locator", viaLocator), ("extra field", viaExtra)] {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("zip-\(UUID().uuidString).bin")
            defer { try? FileManager.default.removeItem(at: url) }
            try Data(bytes).write(to: url)
            #expect(throws: BertError.self, "\(what)") { _ = try ModelWeights.open(url) }
        }
    }

    @Test func aPickleNamingAnyOtherGlobalIsRefusedUnrun() {
        let pickle: [UInt8] =
            [0x80, 0x02, UInt8(ascii: "c")] + Array("os\nsystem\n".utf8) + [0x8C, 4] + Array("true".utf8)
            + [0x85, UInt8(ascii: "R"), 0x2E]
        guard case .unsafePickle(_, let global) = open(pickle) as? BertError else {
            Issue.record("os.system was not refused as unsafe")
            return
        }
        #expect(global == "os.system")
    }
}
