import discomfy


def test_package_has_a_version() -> None:
    assert discomfy.__version__
