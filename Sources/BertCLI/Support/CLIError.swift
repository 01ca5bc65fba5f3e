import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

/// A failure the user can act on: printed as "error: ..." with exit code 1, never a crash.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
