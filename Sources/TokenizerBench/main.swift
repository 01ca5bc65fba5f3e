// Tokenizer throughput: ids only (the fast path) and full encodings (offsets, word ids), on the
// lines of a text file, best of N runs. scripts/bench-tokenizer.sh runs it beside the peers.
//
//   TokenizerBench --model DIR --text FILE [--threads N] [--repeat R] [--dump-ids FILE] [--json] [--cli BERT]
//                  [--cli-ids-only]
//
// With --cli, also the whole `bert tokenize` process (read, tokenize, print to /dev/null) on the
// same file and threads, ids and --format json (not with --cli-ids-only), and the process on an
// empty input (its start-up: loading the tokenizer), each the best of the repeats.
import BertTokenizer
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    exit(2)
}

func number(_ s: String?, _ flag: String) -> Int {
    guard let s, let n = Int(s), n > 0 else { fail("\(flag) needs a positive number") }
    return n
}

@MainActor func run() {
    var model: String?, textPath: String?, dumpPath: String?
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var repeatCount = 5
    var json = false
    var only: String?
    var cli: String?
    var cliIdsOnly = false
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--model": model = args.next()
        case "--text": textPath = args.next()
        case "--threads": threads = number(args.next(), a)
        case "--repeat": repeatCount = number(args.next(), a)
        case "--dump-ids": dumpPath = args.next()
        case "--json": json = true
        case "--only": only = args.next()
        case "--cli": cli = args.next()
        case "--cli-ids-only": cliIdsOnly = true
        default: fail("unknown argument \(a)")
        }
    }
    guard let model, let textPath else {
        fail("usage: TokenizerBench --model DIR --text FILE [--threads N] [--repeat R] [--dump-ids FILE] [--json]")
    }

    var tokenizer: BertTokenizer
    do { tokenizer = try BertTokenizer(modelFolder: URL(fileURLWithPath: model)) } catch { fail("\(error)") }
    tokenizer.truncation = nil
    tokenizer.padding = nil
    guard let data = FileManager.default.contents(atPath: textPath) else { fail("\(textPath): cannot read") }
    let text = String(decoding: data, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let bytes = data.count

    func best(_ body: () -> Int) -> (seconds: Double, tokens: Int) {
        var tokens = body()  // warm-up
        var bestTime = Double.infinity
        for _ in 0..<repeatCount {
            let t0 = DispatchTime.now().uptimeNanoseconds
            tokens = body()
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            bestTime = min(bestTime, t)
        }
        return (bestTime, tokens)
    }

    var lastIds = RaggedIds()
    let idsRun =
        only == "full"
        ? (seconds: 0.0, tokens: 0)
        : best {
            lastIds = tokenizer.encodeIdsBatch(lines, threads: threads)
            return lastIds.ids.count
        }
    let fullRun =
        only == "ids"
        ? idsRun
        : best {
            let encodings = (try? tokenizer.encodeBatch(lines, threads: threads)) ?? []
            return encodings.reduce(0) { $0 + $1.count }
        }
    if only == nil, fullRun.tokens != idsRun.tokens { fail("ids-only and full encodings disagree on the token count") }

    if let dumpPath {
        var out = [Int32]()
        out.reserveCapacity(lastIds.ids.count + lastIds.count)
        for r in 0..<lastIds.count {
            let row = lastIds[r]
            out.append(Int32(row.count))
            out.append(contentsOf: row)
        }
        let d = out.withUnsafeBufferPointer { Data(buffer: $0) }
        if !FileManager.default.createFile(atPath: dumpPath, contents: d) { fail("\(dumpPath): cannot write") }
    }

    func entry(_ r: (seconds: Double, tokens: Int)) -> [String: Any] {
        [
            "seconds": r.seconds, "mb_per_s": Double(bytes) / r.seconds / 1e6,
            "tokens": r.tokens, "tokens_per_s": Double(r.tokens) / r.seconds,
        ]
    }
    print("swift-bert tokenizer, \(threads) thread(s), \(lines.count) lines, \(bytes) bytes, \(idsRun.tokens) tokens")
    for (name, r) in [("ids", idsRun), ("full", fullRun)] {
        print(
            String(
                format: "  %-5@ %8.4f s  %8.1f MB/s  %7.2f Mtok/s", name as NSString, r.seconds,
                Double(bytes) / r.seconds / 1e6, Double(r.tokens) / r.seconds / 1e6))
    }
    /// The best wall time of `bert tokenize` on `input` (output to /dev/null), over the repeats.
    func timeCommand(_ binary: String, input: String, extra: [String]) -> Double {
        var bestTime = Double.infinity
        for _ in 0..<repeatCount {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["tokenize", "--model", model, "--threads", String(threads)] + extra + [input]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            let t0 = DispatchTime.now().uptimeNanoseconds
            do { try p.run() } catch { fail("\(binary): \(error)") }
            p.waitUntilExit()
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if p.terminationStatus != 0 { fail("bert tokenize exited \(p.terminationStatus)") }
            bestTime = min(bestTime, t)
        }
        return bestTime
    }
    var cliEntry: [String: Any]? = nil
    if let cli {
        let idsTime = timeCommand(cli, input: textPath, extra: [])
        let startup = timeCommand(cli, input: "/dev/null", extra: [])
        print(
            String(
                format: "  bert tokenize %8.4f s  %8.1f MB/s (start-up %.3f s; %.2fx the library's ids)",
                idsTime, Double(bytes) / idsTime / 1e6, startup, idsRun.seconds / idsTime))
        cliEntry = ["seconds": idsTime, "mb_per_s": Double(bytes) / idsTime / 1e6, "startup_s": startup]
        if !cliIdsOnly {
            let jsonTime = timeCommand(cli, input: textPath, extra: ["--format", "json"])
            print(
                String(
                    format: "  bert tokenize --format json %8.4f s  %8.1f MB/s", jsonTime,
                    Double(bytes) / jsonTime / 1e6))
            cliEntry?["json_seconds"] = jsonTime
            cliEntry?["json_mb_per_s"] = Double(bytes) / jsonTime / 1e6
        }
    }
    if json {
        var object: [String: Any] = [
            "threads": threads, "bytes": bytes, "lines": lines.count,
            "ids": entry(idsRun), "full": entry(fullRun),
        ]
        if let cliEntry { object["cli"] = cliEntry }
        let d = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: d, as: UTF8.self))
    }
}

run()
