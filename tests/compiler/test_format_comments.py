"""Where the formatter puts comments (`formatter._merge`, by bisection) is where the first version put
them by scanning every printed line for each comment (the reference below), on random layouts."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from tqflow.dsl.formatter import Comment, Line, _merge


def reference(lines: list[Line | None], found: list[Comment]) -> list[tuple[list[str], str] | None]:
    printed = [x for x in lines if x is not None]
    tail: list[str] = []
    for comment in found:
        if comment.own_line:
            after = [x for x in printed if x.anchor > comment.line]
            if after:
                min(after, key=lambda x: x.anchor).comments_before.append(comment.text)
            else:
                tail.append(comment.text)
        else:
            before = [x for x in printed if 0 < x.anchor <= comment.line]
            if before:
                target = max(reversed(before), key=lambda x: x.anchor)
                target.trailing = f"{target.trailing}  {comment.text}" if target.trailing else comment.text
            else:
                tail.append(comment.text)
    return [None if x is None else (x.comments_before, x.trailing) for x in lines] + [([*tail], "")]


layouts = st.lists(
    st.one_of(st.none(), st.builds(Line, st.integers(0, 2), st.just("x"), st.integers(0, 12))), max_size=15
)
comments = st.lists(
    st.builds(Comment, st.integers(1, 14), st.sampled_from(["# a", "# b", "# c"]), st.booleans()), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(layouts, comments)
def test_comments_go_where_the_scanning_version_put_them(
    lines: list[Line | None], found: list[Comment]
) -> None:
    expected = reference(copy.deepcopy(lines), found)
    placed = copy.deepcopy(lines)
    text = _merge(placed, found)
    assert [None if x is None else (x.comments_before, x.trailing) for x in placed] == expected[:-1]
    for comment in expected[-1][0]:
        assert comment in text.split("\n")
