import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// Labeled examples from a CSV, TSV or JSON Lines file.
func readExamples(_ path: String, columns: ColumnNames, requireLabel: Bool = true) throws -> [LabeledExample] {
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): file not found") }
    return try readLabeledExamples(URL(fileURLWithPath: path), columns: columns, requireLabel: requireLabel)
}
