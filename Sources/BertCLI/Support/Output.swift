import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// Prints to stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Buffered stdout: one write(2) per ~1 MB, from a buffer that is allocated once.
final class Output {
    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var count = 0
    private var scratch: [UInt8] = []
    private static let flushAt = 1 << 20

    init() {
        capacity = 2 * Self.flushAt
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    func write(_ s: String) {
        var s = s
        s.withUTF8 { append($0) }
    }

    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        withRoom(bytes.count) { p in
            if let base = bytes.baseAddress { p.update(from: base, count: bytes.count) }
            return bytes.count
        }
    }

    /// Appends what `body` writes into a byte array (for output built piece by piece).
    func withBuffer(_ body: (inout [UInt8]) -> Void) {
        scratch.removeAll(keepingCapacity: true)
        body(&scratch)
        scratch.withUnsafeBufferPointer { append($0) }
    }

    /// Gives `body` room for at least `bound` bytes at the end of the buffer; it returns how many
    /// it wrote there.
    func withRoom(_ bound: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        if count + bound > capacity {
            let grown = max(2 * capacity, count + bound)
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
            bigger.update(from: storage, count: count)
            storage.deallocate()
            storage = bigger
            capacity = grown
        }
        let written = body(storage + count)
        precondition(written >= 0 && written <= bound, "Output.withRoom: wrote \(written) of at most \(bound) bytes")
        count += written
        if count >= Self.flushAt { flush() }
    }

    /// Writes out what is buffered. A failed write (a full disk, a closed file) is an error, not
    /// lost output: the command stops with its message and exit code 1.
    func flush() {
        var done = 0
        while done < count {
            let n = writeToStandardOutput(storage + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                warn("Error: cannot write the output: \(String(cString: strerror(errno)))")
                exit(1)
            }
            done += n
        }
        count = 0
    }

}

func printJSON(_ object: Any) throws {
    let json = try JSONSerialization.data(withJSONObject: jsonSafe(object), options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

/// `object` with every number that is not finite as JSON null: a metric can be undefined (Pearson
/// on constant labels is NaN), and JSON has no NaN.
func jsonSafe(_ object: Any) -> Any {
    switch object {
    case let d as Double: return d.isFinite ? d : NSNull()
    case let f as Float: return f.isFinite ? f : NSNull()
    case let dict as [String: Any]: return dict.mapValues(jsonSafe)
    case let array as [Any]: return array.map(jsonSafe)
    default: return object
    }
}

func formatMetrics(_ m: [String: Double]) -> String {
    m.keys.sorted().filter { $0 != "examples" }.map { String(format: "%@ %.4f", $0 as NSString, m[$0]!) }.joined(
        separator: "  ")
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

/// write(2) to stdout (a free function: inside `Output`, `write` names its own method).
private func writeToStandardOutput(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(1, bytes, count)
}
