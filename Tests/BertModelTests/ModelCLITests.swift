import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

// The model commands of the `bert` executable: params, inspect, init, embed. They run the built
// binary (as Tests/BertTokenizerTests/CLITests.swift does; that target is a separate module, so
// the helpers are repeated here under other names).

/// The `bert` executable, built next to the test bundle.
func bertExecutable() -> URL {
    // The binary of the build under test (beside the test bundle, or above it inside a macOS
    // .xctest bundle), never another build's: a stale .build/release/bert would test old code.
    let start = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var dir = start
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("bert")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return start.appendingPathComponent("bert")
}

struct BertCLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    /// True when the process ended by a signal or printed a Swift runtime trap.
    var crashed: Bool
    /// True when it ran past the timeout and was stopped.
    var timedOut = false
}

func runBertCLI(
    _ args: [String], stdin: Data = Data(), timeout: Double? = nil, environment: [String: String] = [:],
    executable: URL? = nil
) throws -> BertCLIResult {
    let p = Process()
    p.executableURL = executable ?? bertExecutable()
    p.arguments = args
    // No backtracer output on a crash: it is slow and floods the log; the exit status tells.
    // The caller's Hugging Face settings (HF_HOME, HF_TOKEN, ...) never leak into a test.
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HF_") }
    env["SWIFT_BACKTRACE"] = "enable=no"
    env.merge(environment) { $1 }
    p.environment = env
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    nonisolated(unsafe) var timedOut = false
    if let timeout {
        let process = p
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            if process.isRunning {
                timedOut = true
                process.terminate()
            }
        }
    }
    // Write stdin and read stderr on other threads so that no pipe fills up and blocks the child.
    let writer = Thread {
        inPipe.fileHandleForWriting.write(stdin)
        try? inPipe.fileHandleForWriting.close()
    }
    writer.start()
    nonisolated(unsafe) var err = Data()
    let errDone = DispatchSemaphore(value: 0)
    Thread {
        err = errPipe.fileHandleForReading.readDataToEndOfFile()
        errDone.signal()
    }.start()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    p.waitUntilExit()
    let stderr = String(decoding: err, as: UTF8.self)
    return BertCLIResult(
        status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: stderr,
        crashed: (p.terminationReason == .uncaughtSignal && !timedOut) || stderr.contains("Fatal error"),
        timedOut: timedOut)
}

/// The number on the "total" line of a `bert params` table.
private func tableTotal(_ table: String) -> Int? {
    guard let line = table.split(separator: "\n").first(where: { $0.hasPrefix("total") }) else { return nil }
    let number = line.split(separator: " ").dropFirst().first { $0.first?.isNumber == true }
    return number.flatMap { Int($0.replacingOccurrences(of: ",", with: "")) }
}

/// Each output line of `bert embed` as an array of Floats.
private func embeddingLines(_ stdout: String) throws -> [[Float]] {
    try stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
        let array = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [NSNumber],
            "not a JSON array: \(line.prefix(80))")
        return array.map(\.floatValue)
    }
}

private func norm(_ v: [Float]) -> Float { v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }

private func scratchFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent(
        "bert-model-cli-\(UUID().uuidString)", isDirectory: true)
}

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: bertExecutable().path) || ModelFixtures.required))
struct ModelCLITests {
    static let tiny = ModelFixtures.url("tiny-pretraining")

    // MARK: params

    @Test func paramsOfThePresets() throws {
        let base = try runBertCLI(["params", "--preset", "base"])
        #expect(base.status == 0, "\(base.stderr)")
        #expect(base.stdout.contains("109,482,240"))
        #expect(tableTotal(base.stdout) == 109_482_240)
        #expect(base.stdout.contains("12 layers, hidden 768"))
        let large = try runBertCLI(["params", "--preset", "large"])
        let total = try #require(tableTotal(large.stdout))
        #expect(total > 334_000_000 && total < 336_000_000)
    }

    @Test func unknownPresetFails() throws {
        let r = try runBertCLI(["params", "--preset", "nope"])
        #expect(r.status != 0)
        #expect(!r.crashed)
        #expect(r.stderr.contains("nope") && r.stderr.contains("tiny, mini, small, medium, base, large"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let none = try runBertCLI(["params"])
        #expect(none.status != 0 && none.stderr.contains("exactly one of"))
        let two = try runBertCLI(["params", "--preset", "base", "--config", "x.json"])
        #expect(two.status != 0 && two.stderr.contains("exactly one of"))
    }

    @Test func paramsOfAConfigAndOfAModelFolder() throws {
        let configURL = Self.tiny.appendingPathComponent("config.json")
        let fromConfig = try runBertCLI(["params", "--config", configURL.path])
        #expect(fromConfig.status == 0, "\(fromConfig.stderr)")
        let config = try BertConfig(contentsOf: configURL)
        #expect(tableTotal(fromConfig.stdout) == ParameterBreakdown(config: config).total)

        let fromModel = try runBertCLI(["params", "--model", Self.tiny.path])
        #expect(fromModel.status == 0, "\(fromModel.stderr)")
        #expect(fromModel.stderr.isEmpty, "the checkpoint matches its config: \(fromModel.stderr)")
        let file = try SafeTensorsFile(contentsOf: Self.tiny.appendingPathComponent("model.safetensors"))
        #expect(tableTotal(fromModel.stdout) == ParameterBreakdown(file: file).total)
        #expect(fromModel.stdout.contains("masked-LM head"))
        #expect(fromModel.stdout.contains("(1,221 per layer × 2)"))
    }

    @Test func paramsJSONMatchesTheTable() throws {
        for args in [
            ["--preset", "mini"], ["--config", Self.tiny.appendingPathComponent("config.json").path],
            ["--model", Self.tiny.path],
        ] {
            let table = try runBertCLI(["params"] + args)
            let json = try runBertCLI(["params", "--json"] + args)
            #expect(json.status == 0, "\(json.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let total = try #require(object["total"] as? Int)
            #expect(total == tableTotal(table.stdout), "\(args)")
            let components = try #require(object["components"] as? [[String: Any]])
            #expect(components.reduce(0) { $0 + ($1["parameters"] as? Int ?? 0) } == total)
            #expect(object["layers"] as? Int == (args[0] == "--preset" ? 4 : 2))
        }
    }

    @Test func paramsOfBadSourcesAreClearErrors() throws {
        let missing = "/nonexistent/model-\(UUID().uuidString)"
        for args in [["--model", missing], ["--config", missing + "/config.json"]] {
            let r = try runBertCLI(["params"] + args)
            #expect(r.status != 0 && !r.crashed)
            #expect(r.stderr.contains(missing), "\(r.stderr)")
        }
        // A checkpoint whose config does not describe it is counted, with a warning.
        let folder = scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: Self.tiny.appendingPathComponent("model.safetensors"),
            to: folder.appendingPathComponent("model.safetensors"))
        var config = try BertConfig(contentsOf: Self.tiny.appendingPathComponent("config.json"))
        config.intermediateSize = 64
        try config.write(to: folder.appendingPathComponent("config.json"))
        let r = try runBertCLI(["params", "--model", folder.path])
        #expect(r.status == 0)
        #expect(r.stderr.contains("warning") && r.stderr.contains("config.json"), "\(r.stderr)")
    }

    // MARK: inspect, init

    @Test func inspectListsTensors() throws {
        let r = try runBertCLI(["inspect", "--model", ModelFixtures.url("tiny-f16").path])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("pooler.dense.weight ") }
        let pooler = try #require(line, "\(r.stdout)")
        #expect(pooler.contains("F16") && pooler.contains("[32, 32]"))
        #expect(r.stdout.contains("\"hidden_size\" : 32") || r.stdout.contains("\"hidden_size\": 32"))
        #expect(r.stdout.contains("parameters: "))
        let missing = try runBertCLI(["inspect", "--model", "/nonexistent/tiny"])
        #expect(missing.status != 0 && !missing.crashed && missing.stderr.contains("/nonexistent/tiny"))
    }

    @Test func initThenInspectAndCount() throws {
        let folder = scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let made = try runBertCLI(["init", "--preset", "tiny", "--out", folder.path, "--seed", "3"])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("wrote \(folder.path)"))
        let inspect = try runBertCLI(["inspect", "--model", folder.path])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("embeddings.word_embeddings.weight"))
        #expect(inspect.stdout.contains("[30522, 128]"))
        let fromModel = try runBertCLI(["params", "--model", folder.path])
        let fromPreset = try runBertCLI(["params", "--preset", "tiny"])
        #expect(fromModel.status == 0 && fromModel.stderr.isEmpty, "\(fromModel.stderr)")
        let total = try #require(tableTotal(fromModel.stdout))
        #expect(total == tableTotal(fromPreset.stdout))
        #expect(total == ParameterBreakdown(config: try BertConfig.preset("tiny")).total)
        // The library reads what the CLI wrote, initialised as BERT is.
        let model = try BertModel(folder: folder)
        #expect(model.config.numHiddenLayers == 2 && model.config.hiddenSize == 128)
        #expect(model.parameters.values(model.embeddings.layerNorm.weight).allSatisfy { $0 == 1 })
        // Same seed, same bytes.
        let again = scratchFolder()
        defer { try? FileManager.default.removeItem(at: again) }
        #expect(try runBertCLI(["init", "--preset", "tiny", "--out", again.path, "--seed", "3"]).status == 0)
        #expect(
            try Data(contentsOf: folder.appendingPathComponent("model.safetensors"))
                == Data(contentsOf: again.appendingPathComponent("model.safetensors")))
    }

    @Test func initWithBadArgumentsFails() throws {
        let folder = scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let bad = try runBertCLI(["init", "--preset", "huge", "--out", folder.path])
        #expect(bad.status != 0 && !bad.crashed && bad.stderr.contains("huge"))
        #expect(!FileManager.default.fileExists(atPath: folder.path))
        let neither = try runBertCLI(["init", "--out", folder.path])
        #expect(neither.status != 0 && neither.stderr.contains("exactly one of"))
    }

    // MARK: embed (all-MiniLM-L6-v2)

    static let miniLM = ModelFixtures.miniLMFolder.path

    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func embedMatchesTheLibrary() throws {
        let texts = ["The quick brown fox jumps over the lazy dog.", "", "Swift est un langage 🙂 rapide."]
        let r = try runBertCLI(
            ["embed", "--model", Self.miniLM, "--precision", "9"],
            stdin: Data((texts.joined(separator: "\n") + "\n").utf8))
        #expect(r.status == 0, "\(r.stderr)")
        let vectors = try embeddingLines(r.stdout)
        try #require(vectors.count == 3)
        for v in vectors {
            #expect(v.count == 384)
            #expect(abs(norm(v) - 1) <= 1e-4)
        }
        let embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder)
        let expected = try embedder.embed(texts)
        for i in 0..<3 {
            #expect(maxAbsDiff(vectors[i], expected[i]) <= 1e-5, "line \(i + 1)")
        }
        // The same lines from a file, and without the final newline.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bert-embed-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(texts.joined(separator: "\n").utf8).write(to: file)
        let fromFile = try runBertCLI(["embed", "--model", Self.miniLM, "--digits", "9", file.path])
        #expect(fromFile.stdout == r.stdout)
    }

    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func embedPrecisionIsTheLibrarysLowPrecisionPath() throws {
        let texts = ["The quick brown fox jumps over the lazy dog.", "Swift est un langage 🙂 rapide."]
        let input = Data((texts.joined(separator: "\n") + "\n").utf8)
        let float = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder).embed(texts)
        for precision in [Precision.bf16, .int8] {
            let r = try runBertCLI(
                ["embed", "--model", Self.miniLM, "--precision", precision.rawValue, "--digits", "9"], stdin: input)
            #expect(r.status == 0, "\(r.stderr)")
            let vectors = try embeddingLines(r.stdout)
            try #require(vectors.count == 2)
            let expected = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, precision: precision).embed(texts)
            for i in 0..<2 {
                #expect(maxAbsDiff(vectors[i], expected[i]) <= 1e-6, "\(precision) line \(i + 1)")
                #expect(maxAbsDiff(vectors[i], float[i]) > 1e-5, "\(precision) line \(i + 1) is the fp32 result")
            }
        }
        let unknown = try runBertCLI(["embed", "--model", Self.miniLM, "--precision", "fp16"], stdin: input)
        #expect(unknown.status != 0 && unknown.stderr.contains("int8"), "\(unknown.stderr)")
        let both = try runBertCLI(["embed", "--model", Self.miniLM, "--precision", "9", "--digits", "3"], stdin: input)
        #expect(both.status != 0 && both.stderr.contains("--digits"), "\(both.stderr)")
    }

    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func clsPoolingWithoutNormalization() throws {
        let input = Data("A sentence to embed.\n".utf8)
        let normal = try embeddingLines(try runBertCLI(["embed", "--model", Self.miniLM], stdin: input).stdout)
        let r = try runBertCLI(
            ["embed", "--model", Self.miniLM, "--pooling", "cls", "--no-normalize", "--digits", "9"],
            stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        let cls = try embeddingLines(r.stdout)
        try #require(normal.count == 1 && cls.count == 1)
        #expect(cls[0].count == 384)
        #expect(abs(norm(cls[0]) - 1) > 1e-2, "norm \(norm(cls[0]))")
        #expect(maxAbsDiff(cls[0], normal[0]) > 1e-3)
        let embedder = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, pooling: [.cls], normalize: false)
        #expect(maxAbsDiff(cls[0], try embedder.embed(["A sentence to embed."])[0]) <= 1e-5)
        let badPooling = try runBertCLI(["embed", "--model", Self.miniLM, "--pooling", "median"], stdin: input)
        #expect(badPooling.status != 0 && badPooling.stderr.contains("mean_sqrt_len"))
    }

    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func noTruncationNamesTheLine() throws {
        let long = Array(repeating: "word", count: 600).joined(separator: " ")
        let input = Data("short line\nanother\n\(long)\nlast\n".utf8)
        let r = try runBertCLI(["embed", "--model", Self.miniLM, "--no-truncation"], stdin: input)
        #expect(r.status != 0 && !r.crashed)
        #expect(
            r.stderr.contains("line 3") && r.stderr.contains("602 tokens") && r.stderr.contains("256"), "\(r.stderr)")
        // Truncated by default.
        let ok = try runBertCLI(["embed", "--model", Self.miniLM], stdin: input)
        #expect(ok.status == 0)
        #expect(try embeddingLines(ok.stdout).count == 4)
    }

    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func invalidUTF8DoesNotCrash() throws {
        // "caf\xFF", "\xC3(", "ok\xE2\x82": three lines with invalid bytes, then a valid one.
        let input = Data(
            [0x63, 0x61, 0x66, 0xFF, 0x0A, 0xC3, 0x28, 0x0A, 0x6F, 0x6B, 0xE2, 0x82, 0x0A] + Array("fine\n".utf8))
        let r = try runBertCLI(["embed", "--model", Self.miniLM], stdin: input)
        #expect(r.status == 0 && !r.crashed, "\(r.stderr)")
        let vectors = try embeddingLines(r.stdout)
        #expect(vectors.count == 4)
        #expect(vectors.allSatisfy { $0.count == 384 && abs(norm($0) - 1) <= 1e-4 })
        #expect(r.stderr.components(separatedBy: "invalid UTF-8").count == 2, "one warning: \(r.stderr)")
    }

    @Test func embedWithAMissingModelFolder() throws {
        let missing = "/nonexistent/model-\(UUID().uuidString)"
        let r = try runBertCLI(["embed", "--model", missing], stdin: Data("hello\n".utf8))
        #expect(r.status != 0 && !r.crashed)
        #expect(r.stderr.contains(missing) && r.stderr.contains("no such folder"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func embedWithoutATokenizerIsAClearError() throws {
        let r = try runBertCLI(["embed", "--model", Self.tiny.path], stdin: Data("hello\n".utf8))
        #expect(r.status != 0 && !r.crashed)
        #expect(r.stderr.contains("tokenizer") && r.stderr.contains("vocab.txt"), "\(r.stderr)")
    }

    // A config.json with an absurd size (a typo, a corrupted file) is reported before anything is
    // allocated: either as impossibly large, or as not matching the weights' shapes.
    @Test(arguments: ["10000000000000", "4611686018427387904", "1000000000"])
    func configWithAnAbsurdVocabularyIsAnErrorNotACrash(_ vocabSize: String) throws {
        let folder = scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: Self.tiny.appendingPathComponent("model.safetensors"),
            to: folder.appendingPathComponent("model.safetensors"))
        var text = try String(contentsOf: Self.tiny.appendingPathComponent("config.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "\"vocab_size\": 99", with: "\"vocab_size\": \(vocabSize)")
        try text.write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n".write(
            to: folder.appendingPathComponent("vocab.txt"),
            atomically: true, encoding: .utf8)
        let r = try runBertCLI(["embed", "--model", folder.path], stdin: Data("hello\n".utf8))
        let firstLine = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(
            !r.crashed && r.status == 1
                && (r.stderr.contains("word_embeddings") || r.stderr.contains("impossibly large")
                    || r.stderr.contains("vocab_size \(vocabSize) is more than the largest supported")),
            "exit status \(r.status)\(r.crashed ? " (crashed)" : ""): \(firstLine)")
    }

    /// fill-mask on a model `bert pretrain` wrote (tiny, one step): a CRLF file reads as its LF
    /// twin (no "\r" echoed), texts and --file are one or the other, and a text whose [MASK] is
    /// cut off is named by its number, not echoed whole.
    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs .cache/models/all-MiniLM-L6-v2"))
    func fillMaskReadsFilesAndNamesTheTextWithoutAMask() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let corpus = root.appendingPathComponent("corpus.txt")
        try "the cat sat on the mat.\nit was happy.\n\nthe dog ran far away.\nit came back.\n\na third one.\nhere.\n"
            .write(to: corpus, atomically: true, encoding: .utf8)
        let model = root.appendingPathComponent("model").path
        let made = try runBertCLI([
            "pretrain", "--preset", "tiny", "--vocab",
            ModelFixtures.miniLMFolder.appendingPathComponent("vocab.txt").path,
            "--corpus", corpus.path, "--steps", "1", "--batch-size", "2", "--seq-len", "32", "--warmup", "0",
            "--out", model,
        ])
        #expect(made.status == 0, "\(made.stderr)")
        let text = "the [MASK] sat.\nit [MASK] back.\n"
        let lf = root.appendingPathComponent("lf.txt"), crlf = root.appendingPathComponent("crlf.txt")
        try text.write(to: lf, atomically: true, encoding: .utf8)
        try text.replacingOccurrences(of: "\n", with: "\r\n").write(to: crlf, atomically: true, encoding: .utf8)
        let a = try runBertCLI(["fill-mask", "--model", model, "--top-k", "2", "--file", lf.path])
        let b = try runBertCLI(["fill-mask", "--model", model, "--top-k", "2", "--file", crlf.path])
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(a.stdout.hasPrefix("the [MASK] sat.\n  [MASK] 1: ") && a.stdout.contains("\nit [MASK] back.\n"))
        #expect(b.stdout == a.stdout && !b.stdout.contains("\r"))
        let both = try runBertCLI(["fill-mask", "--model", model, "--file", lf.path, "the [MASK]"])
        #expect(both.status != 0 && !both.crashed && both.stderr.contains("one of the two"), "\(both.stderr)")
        let long = root.appendingPathComponent("long.txt")
        try ("the [MASK].\n" + String(repeating: "word ", count: 3000) + "[MASK]\n").write(
            to: long, atomically: true, encoding: .utf8)
        let cut = try runBertCLI(["fill-mask", "--model", model, "--file", long.path])
        #expect(cut.status != 0 && !cut.crashed && cut.stderr.contains("text 2 ("), "\(cut.stderr)")
        #expect(cut.stderr.count < 500, "the text is named, not echoed whole")
    }
}
