" Vim syntax for .tqflow files (Neovim does not read TextMate grammars; this follows
" editors/tqflow.tmLanguage.json: keywords, strings, durations, dates, numbers, comments).
if exists("b:current_syntax")
  finish
endif

syn keyword tqflowDeclaration flow job output use import as limiter
syn keyword tqflowKeyword params defaults schedule queue priority retry after when timeout deadline delay
syn keyword tqflowKeyword unique dead_letter limit fair by weight cron tz every at for in on never else
syn keyword tqflowOperator and or not
syn keyword tqflowConstant true false none
syn keyword tqflowBuiltin any_failed all_failed any_succeeded all_succeeded all_done any_done
syn keyword tqflowType Str Int Float Bool Date DateTime Duration Decimal Json
" Later matches win where several start at one place: numbers first, dates and durations after.
syn match tqflowNumber "\<\d\+\(\.\d\+\)\=\>"
syn match tqflowDate "\<\d\{4}-\d\d-\d\d\>"
syn match tqflowDateTime "\<\d\{4}-\d\d-\d\dT\d\d:\d\d\(:\d\d\(\.\d\+\)\=\)\=\(Z\|[+-]\d\d:\d\d\)\="
syn match tqflowPercent "\<\d\+\(\.\d\+\)\=%"
syn match tqflowDuration "\<\d\+\(ms\|s\|m\|h\|d\)\>"
syn region tqflowString start=+f\="+ skip=+\\.+ end=+"\|$+ contains=tqflowEscape
syn match tqflowEscape "\\." contained
syn match tqflowComment "#.*$"

hi def link tqflowDeclaration Keyword
hi def link tqflowKeyword Keyword
hi def link tqflowOperator Operator
hi def link tqflowConstant Constant
hi def link tqflowBuiltin Function
hi def link tqflowType Type
hi def link tqflowDateTime Number
hi def link tqflowDate Number
hi def link tqflowNumber Number
hi def link tqflowPercent Number
hi def link tqflowDuration Number
hi def link tqflowString String
hi def link tqflowEscape SpecialChar
hi def link tqflowComment Comment

let b:current_syntax = "tqflow"
