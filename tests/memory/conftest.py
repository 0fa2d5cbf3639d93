import pytest


@pytest.fixture(scope="session")
def organism():
    import mechscope

    return mechscope.load("organism:tiny-gpt2")


@pytest.fixture(scope="session")
def organism_facts(organism):
    from mechscope.memory.facts import known_facts

    return known_facts(organism)
