import Foundation
import Testing

/// The `bert` executable, built next to the test bundle.
func bertBinary() -> URL {
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

struct RunResult { var status: Int32; var stdout: String; var stderr: String }

func runBert(_ args: [String], stdin: Data = Data()) throws -> RunResult {
    let p = Process()
    p.executableURL = bertBinary()
    p.arguments = args
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    inPipe.fileHandleForWriting.write(stdin)
    try inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    let err = errPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(
        status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
        stderr: String(decoding: err, as: UTF8.self))
}

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: bertBinary().path) || Fixtures.required))
struct CLITests {
    func vocabFile() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-vocab-\(UUID().uuidString).txt")
        try (EncodingTests.tokens.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func idsPairsAndJSON() throws {
        let vocab = try vocabFile().path
        let r = try runBert(["tokenize", "--vocab", vocab], stdin: Data("the dog!\nrunning\n".utf8))
        #expect(r.status == 0)
        #expect(r.stdout == "2 5 12 9 3\n2 13 14 3\n")
        let p = try runBert(["tokenize", "--vocab", vocab, "--pair"], stdin: Data("the dog\trunning\n".utf8))
        #expect(p.stdout == "2 5 12 3 13 14 3 | 0 0 0 0 1 1 1\n")
        let j = try runBert(["tokenize", "--vocab", vocab, "--format", "json"], stdin: Data("the dog\n".utf8))
        let object = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as! [String: Any]
        #expect(object["tokens"] as? [String] == ["[CLS]", "the", "dog", "[SEP]"])
        #expect(object["offsets"] as? [[Int]] == [[0, 0], [0, 3], [4, 7], [0, 0]])
        let t = try runBert(["tokenize", "--vocab", vocab, "--max-length", "3"], stdin: Data("the dog\n".utf8))
        #expect(t.stdout == "2 5 3\n")
    }

    /// CRLF input gives what its LF twin gives, in every format (a guard on the block reader's line
    /// splitting; the tokenizer would also drop a "\r" left on a line, as a control character).
    @Test func crlfInputReadsAsLf() throws {
        let vocab = try vocabFile().path
        for args in [
            ["tokenize", "--vocab", vocab], ["tokenize", "--vocab", vocab, "--format", "json"],
            ["tokenize", "--vocab", vocab, "--pair"],
        ] {
            let text = args.contains("--pair") ? "the dog\trunning\nthe\tdog\n" : "the dog!\nrunning\n\nthe"
            let lf = try runBert(args, stdin: Data(text.utf8))
            let crlf = try runBert(args, stdin: Data(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
            #expect(lf.status == 0 && crlf.status == 0)
            #expect(crlf.stdout == lf.stdout, "\(args)")
            #expect(lf.stdout.split(separator: "\n").count == (args.contains("--pair") ? 2 : 4))
        }
    }

    @Test func invalidUTF8IsReplacedAndReportedOnce() throws {
        let vocab = try vocabFile().path
        // "the \xFFdog", "the \xC3(", "\xE2\x82": three lines with invalid bytes.
        let input = Data([
            0x74, 0x68, 0x65, 0x20, 0xFF, 0x64, 0x6F, 0x67, 0x0A,
            0x74, 0x68, 0x65, 0x20, 0xC3, 0x28, 0x0A, 0xE2, 0x82, 0x0A,
        ])
        let r = try runBert(["tokenize", "--vocab", vocab], stdin: input)
        #expect(r.status == 0)
        #expect(r.stdout.split(separator: "\n").count == 3)
        #expect(r.stderr.components(separatedBy: "invalid UTF-8").count == 2, "one warning: \(r.stderr)")
    }

    @Test func badInputsAreClearErrors() throws {
        let missing = try runBert(["tokenize", "--vocab", "/nonexistent/vocab.txt"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/vocab.txt"))
        #expect(!missing.stderr.contains("Fatal error"))
        let both = try runBert(["tokenize"])
        #expect(both.status != 0 && both.stderr.contains("--model"))
        let vocab = try vocabFile().path
        let noTab = try runBert(["tokenize", "--vocab", vocab, "--pair"], stdin: Data("no tab here\n".utf8))
        #expect(noTab.status != 0 && noTab.stderr.contains("line 1"))
        let noFile = try runBert(["tokenize", "--vocab", vocab, "/nonexistent/input.txt"])
        #expect(noFile.status != 0 && noFile.stderr.contains("/nonexistent/input.txt"))
    }
}
