// Header-only support code (see include/bert_support.h); SwiftPM needs one source file per C target.
#include "bert_support.h"
