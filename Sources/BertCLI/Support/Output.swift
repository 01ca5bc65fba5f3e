import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// Prints to stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Buffered stdout: one write per ~1 MB.
final class Output {
    private var buffer: [UInt8] = []
    init() { buffer.reserveCapacity(1 << 20) }
    func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 20 { flush() }
    }
    func flush() {
        guard !buffer.isEmpty else { return }
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Reads UTF-8 lines from files or stdin in batches; invalid UTF-8 is replaced by U+FFFD as a
/// decoder would, with one warning on stderr.
struct LineReader {
    let paths: [String]
    private(set) var warnedInvalid = false

    init(paths: [String]) { self.paths = paths }

    mutating func forEachBatch(size: Int = 8192, _ body: ([String]) throws -> Void) throws {
        let handles: [(String, FileHandle)]
        if paths.isEmpty {
            handles = [("<stdin>", FileHandle.standardInput)]
        } else {
            handles = try paths.map { path in
                guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
                guard let h = FileHandle(forReadingAtPath: path) else { throw CLIError("\(path): cannot open for reading") }
                return (path, h)
            }
        }
        var batch: [String] = []
        for (name, handle) in handles {
            var pending: [UInt8] = []
            while true {
                let chunk = handle.readData(ofLength: 1 << 20)
                if chunk.isEmpty { break }
                pending.append(contentsOf: chunk)
                var start = 0
                while let nl = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    batch.append(decode(pending[start..<nl], source: name))
                    start = nl + 1
                    if batch.count >= size { try body(batch); batch.removeAll(keepingCapacity: true) }
                }
                pending.removeFirst(start)
            }
            if !pending.isEmpty { batch.append(decode(pending[...], source: name)) }
        }
        if !batch.isEmpty { try body(batch) }
    }

    private mutating func decode(_ bytes: ArraySlice<UInt8>, source: String) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        if !warnedInvalid {
            warn("warning: \(source): invalid UTF-8 replaced with U+FFFD (reported once)")
            warnedInvalid = true
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

func printJSON(_ object: Any) throws {
    let json = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

func formatMetrics(_ m: [String: Double]) -> String {
    m.keys.sorted().filter { $0 != "examples" }.map { String(format: "%@ %.4f", $0 as NSString, m[$0]!) }.joined(separator: "  ")
}

/// Shortest-ish fixed formatting: %.{p}g keeps the output compact and exact enough.
func formatFloat(_ x: Float, _ precision: Int) -> String {
    if x.isNaN { return "NaN" }  // never produced by a healthy model; kept visible rather than hidden
    return String(format: "%.\(precision)g", Double(x))
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}
