import numpy as np
from PIL import Image

from pipeline.report.grid import CORRECT, QUERY, WRONG, retrieval_grid


def test_grid_frames_query_correct_and_wrong_results(tmp_path):
    paths = []
    for i, colour in enumerate([(0, 0, 0), (128, 128, 128), (255, 255, 0)]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (10, 6), colour).save(path)
        paths.append(path)
    grid = retrieval_grid([(paths[0], None), (paths[1], (0, 0, 5, 5))], [[paths[1], paths[2]], [paths[2], paths[0]]],
                          [[True, False], [False, True]], size=20, gap=2)
    pixels = np.asarray(grid)
    assert grid.size == (3 * 22 + 2, 2 * 22 + 2)
    assert tuple(pixels[2, 2]) == QUERY  # top-left corner of the first query's frame
    assert tuple(pixels[2, 2 + 22]) == CORRECT and tuple(pixels[2, 2 + 44]) == WRONG
    assert tuple(pixels[24, 2 + 22]) == WRONG and tuple(pixels[24, 2 + 44]) == CORRECT
    assert tuple(pixels[2 + 10, 2 + 22 + 10]) == (128, 128, 128)  # the result image inside its frame
