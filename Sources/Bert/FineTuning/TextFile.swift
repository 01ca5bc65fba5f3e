import BertTokenizer
import Foundation

// The one way the project reads its text formats (CSV, TSV, JSON Lines, CoNLL, SQuAD, choice
// JSON Lines): the whole file as UTF-8, a byte-order mark dropped, and lines ended by LF or CRLF
// (Swift reads "\r\n" as one Character, so a split on "\n" alone would see one long line).

/// The text of a UTF-8 file, without a leading byte-order mark, CRLF line ends made LF.
func readTextFile(_ url: URL) throws -> String {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw BertError.fileAccess(path: url.path, reason: "cannot read: \(fileErrorReason(error, path: url.path))")
    }
    guard var text = String(data: data, encoding: .utf8) else {
        throw BertError.malformedFile(path: url.path, reason: "not valid UTF-8")
    }
    if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
    if text.contains("\r\n") { text = text.replacingOccurrences(of: "\r\n", with: "\n") }
    return text
}

/// The lines of a UTF-8 file with their numbers (from 1), as `readTextFile` reads it.
func readTextLines(_ url: URL) throws -> [(number: Int, text: Substring)] {
    try readTextFile(url).split(separator: "\n", omittingEmptySubsequences: false).enumerated().map {
        ($0.offset + 1, $0.element)
    }
}

/// The objects of a JSON Lines file with their line numbers; blank lines skipped, a line that is
/// not a JSON object an error naming it.
func readJSONLines(_ url: URL) throws -> [(line: Int, object: [String: Any])] {
    var result: [(line: Int, object: [String: Any])] = []
    for (number, line) in try readTextLines(url) {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { continue }
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) } catch {
            throw BertError.malformedFile(
                path: "\(url.path):\(number)", reason: "not valid JSON (one JSON object per line is expected)")
        }
        guard let object = value as? [String: Any] else {
            throw BertError.malformedFile(path: "\(url.path):\(number)", reason: "not a JSON object")
        }
        result.append((number, object))
    }
    return result
}
