import Foundation

/// One labeled example of a sequence task: a text, an optional second text (pairs) and its label
/// (a class name, or a number for regression), with where it came from for error messages.
public struct LabeledExample: Sendable, Equatable {
    /// The text, or a pair's first text.
    public var text: String
    /// A pair's second text; nil for a single sentence.
    public var textPair: String?
    /// The class name, or the target number as text for regression; nil when unlabeled.
    public var label: String?
    /// Where the example came from ("file:line"), named in errors; empty when unknown.
    public var source: String
    /// An example from its fields; unlabeled and without a source by default.
    public init(text: String, textPair: String? = nil, label: String? = nil, source: String = "") {
        self.text = text
        self.textPair = textPair
        self.label = label
        self.source = source
    }
}

/// Which columns hold the text, the second text and the label.
public struct ColumnNames: Sendable {
    /// The text column (default "text").
    public var text = "text"
    /// The second-text column (default "text_pair"); nil reads single sentences only.
    public var textPair: String? = "text_pair"
    /// The label column (default "label").
    public var label = "label"
    /// The pair column was named by the user: a file without it is an error, not single sentences.
    public var requirePair = false
    /// The default names: text, text_pair (optional) and label.
    public init() {}
}

/// Reads CSV (RFC 4180: quoted fields may hold commas, quotes and newlines), TSV (tab-separated,
/// no quoting) or JSON Lines, chosen by the file's extension; the first row of CSV/TSV names the
/// columns. A row that lacks the text column, or the label when `requireLabel`, is an error naming
/// the file and line. A missing text_pair column means single sentences.
public func readLabeledExamples(_ url: URL, columns: ColumnNames = ColumnNames(), requireLabel: Bool = true) throws
    -> [LabeledExample]
{
    let ext = url.pathExtension.lowercased()
    var rows: [(line: Int, fields: [String: String])] = []
    if ext == "jsonl" || ext == "json" || ext == "ndjson" {
        for (line, object) in try readJSONLines(url) {
            var fields: [String: String] = [:]
            for (k, v) in object {
                if v is NSNull { continue }
                if let s = v as? String {
                    fields[k] = s
                } else if let n = v as? NSNumber {
                    fields[k] = n.stringValue
                } else {
                    throw BertError.malformedFile(
                        path: "\(url.path):\(line)", reason: "field '\(k)' must be a string or a number")
                }
            }
            rows.append((line, fields))
        }
    } else if ext == "csv" || ext == "tsv" || ext == "txt" {
        let text = try readTextFile(url)
        let table = ext == "csv" ? try parseCSV(text, source: url.path) : parseTSV(text)
        guard let header = table.first else { throw BertError.malformedFile(path: url.path, reason: "empty file") }
        let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        for row in table.dropFirst() {
            if row.fields.count == 1 && row.fields[0].isEmpty { continue }  // blank line
            guard row.fields.count == names.count else {
                throw BertError.malformedFile(
                    path: "\(url.path):\(row.line)", reason: "\(row.fields.count) fields, the header has \(names.count)"
                )
            }
            rows.append((row.line, Dictionary(zip(names, row.fields), uniquingKeysWith: { a, _ in a })))
        }
    } else {
        throw BertError.malformedFile(path: url.path, reason: "unknown format (use .csv, .tsv or .jsonl)")
    }
    return try rows.map { row in
        guard let t = row.fields[columns.text] else {
            throw BertError.malformedFile(path: "\(url.path):\(row.line)", reason: "no '\(columns.text)' column")
        }
        let label = row.fields[columns.label]
        if requireLabel && (label ?? "").isEmpty {
            throw BertError.malformedFile(path: "\(url.path):\(row.line)", reason: "no '\(columns.label)' value")
        }
        let pair = columns.textPair.flatMap { row.fields[$0] }
        if columns.requirePair, pair == nil, let name = columns.textPair {
            throw BertError.malformedFile(path: "\(url.path):\(row.line)", reason: "no '\(name)' column")
        }
        return LabeledExample(text: t, textPair: pair, label: label, source: "\(url.path):\(row.line)")
    }
}

func parseTSV(_ text: String) -> [(line: Int, fields: [String])] {
    text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, line in
        var l = Substring(line)
        if l.hasSuffix("\r") { l = l.dropLast() }
        if l.isEmpty && i > 0 { return nil }
        return (i + 1, l.split(separator: "\t", omittingEmptySubsequences: false).map(String.init))
    }
}

/// RFC 4180 CSV on Unicode scalars: fields separated by commas, records by CRLF or LF, quoted
/// fields with doubled quotes inside. Each record keeps the line it starts on.
func parseCSV(_ text: String, source: String) throws -> [(line: Int, fields: [String])] {
    var records: [(line: Int, fields: [String])] = []
    var fields: [String] = []
    var field = String.UnicodeScalarView()
    var inQuotes = false, fieldStarted = false
    var line = 1, recordLine = 1
    var scalars = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    func next() -> Unicode.Scalar? {
        if let p = pending { pending = nil; return p }
        return scalars.next()
    }
    func endRecord() {
        fields.append(String(field))
        records.append((recordLine, fields))
        fields = []
        field = String.UnicodeScalarView()
        fieldStarted = false
    }
    while let c = next() {
        if inQuotes {
            if c == "\"" {
                if let d = next() {
                    if d == "\"" { field.append("\"") } else { inQuotes = false; pending = d }
                } else {
                    inQuotes = false
                }
            } else {
                if c == "\n" { line += 1 }
                field.append(c)
            }
            continue
        }
        switch c {
        case "\"" where !fieldStarted && field.isEmpty:
            inQuotes = true
            fieldStarted = true
        case ",":
            fields.append(String(field))
            field = String.UnicodeScalarView()
            fieldStarted = false
        case "\r":
            continue
        case "\n":
            endRecord()
            line += 1
            recordLine = line
        default:
            field.append(c)
            fieldStarted = true
        }
    }
    if inQuotes {
        throw BertError.malformedFile(path: "\(source):\(recordLine)", reason: "a quoted field is not closed")
    }
    if !fields.isEmpty || !field.isEmpty { endRecord() }
    return records
}
